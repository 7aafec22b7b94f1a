/**
 * The daemon's metrics: one prom-client registry of its own, a facade the
 * rest of the code marks events through, and the native counters (the
 * bridge's and the engine plugin's own), read once per scrape (`refresh`).
 *
 * Native counters and both histograms are exported as "external" metrics:
 * objects with prom-client's `get()` shape whose values come from a snapshot
 * or from bucket arrays, so nothing is re-counted in JS per event.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { EventBatch } from './batch.js';
import type { EngineDescription, NativeStats } from './engine.js';
import { NATIVE_LAYOUT } from '../protocol/layout.js';
import { AUTH_REFUSALS, type AuthMode, type AuthRefusal } from './auth.js';
import { RETRY_REASONS, type RetryReason } from './nats/wire.js';

/** Why a WebSocket connection ended. */
export const DISCONNECT_REASONS = [
  'client',
  'shutdown',
  'slow_consumer',
  'write_stall',
  'heartbeat',
  'protocol_abuse',
  'rate_limited',
  'session_error',
  'token_expired',
  'new_epoch',
] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

/** Why events matched for a subscriber were not sent: shed at the low
 * watermark (`slow_consumer`), queued when the subscription ended
 * (`unsubscribed`), or queued or in flight when the connection ended (its
 * disconnect reason). */
export const WS_DROP_REASONS = ['slow_consumer', 'unsubscribed', ...DISCONNECT_REASONS.filter((r) => r !== 'slow_consumer')] as const;
export type WsDropReason = (typeof WS_DROP_REASONS)[number];

/** Why a WebSocket upgrade was refused before the handshake. */
export const UPGRADE_REFUSALS = ['unknown_path', 'shutting_down', 'too_many_connections', 'origin', 'token'] as const;
export type UpgradeRefusal = (typeof UPGRADE_REFUSALS)[number];

export type AgeStage = 'drain' | 'send';

/** A histogram kept as bucket counts: `observe` is a short loop, no allocation. */
export class BucketHistogram {
  readonly counts: number[];
  sum = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }
  observe(v: number) {
    let i = 0;
    while (i < this.bounds.length && v > (this.bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += v;
  }
}

type Sample = { value: number; labels: Record<string, string | number>; metricName?: string };

/** A metric whose values are computed at scrape time. */
function external(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => Sample[]): Metric {
  const m = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
    reset: () => {},
  };
  return m as unknown as Metric;
}

function histogramSamples(name: string, bounds: readonly number[], counts: readonly number[], sum: number, labels: Record<string, string> = {}): Sample[] {
  const out: Sample[] = [];
  let acc = 0;
  bounds.forEach((b, i) => {
    acc += counts[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: b }, value: acc });
  });
  acc += counts[bounds.length] ?? 0;
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: acc });
  return out;
}

/** Bounds of the event-age histograms, seconds: 10 µs to 10 s. */
export const AGE_BOUNDS_S = [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1, 5, 10];

/** Where the metrics' native values come from. */
export interface NativeSource {
  /** The bridge's counters (one native call). */
  stats(): NativeStats;
  /** The engine's own counters, in the order of `description.counters`. */
  engineCounters(): number[];
  readonly description: EngineDescription;
}

export class Metrics {
  /** What the bridge's JSON writer did (json-native.ts), ingest only. */
  readonly jsonNative = { written: 0, tooLarge: 0, refused: 0 };
  readonly registry = new Registry();
  private native: NativeStats | undefined;
  private engine: number[] = [];
  private readonly age: Record<AgeStage, BucketHistogram> = {
    drain: new BucketHistogram(AGE_BOUNDS_S),
    send: new BucketHistogram(AGE_BOUNDS_S),
  };
  private readonly wsConnections: Gauge;
  private readonly wsSent: Counter;
  private readonly wsDropped: Counter<'reason'>;
  private readonly wsDisconnects: Counter<'reason'>;
  private readonly wsRefused: Counter<'reason'>;
  private readonly wsFilters: Gauge;
  private readonly httpConnections: Gauge;
  private readonly httpRefused: Counter<'reason'>;
  private readonly panicLogSuppressed: Counter;
  private readonly authRefusals: Counter<'reason'>;
  private readonly wsAccepted: Counter<'auth'>;
  private readonly keyReloads: Counter<'result'>;

  /**
   * @param source the bridge and the engine; null for the edge role, which
   *   has neither (its metrics are the fan-out's, HTTP's and NATS's).
   */
  constructor(private readonly source: NativeSource | null) {
    const r = this.registry;
    // The event-loop lag sampler wakes the process at this resolution; the
    // default 10 ms cost 2.2 % CPU on an idle 2-core VM (measured), 1 s
    // still records any stall longer than a second's share of the loop.
    collectDefaultMetrics({ register: r, prefix: 'evbridge_', eventLoopMonitoringPrecision: 1000 });
    // prom-client names three gauges *_total, which Prometheus conventions
    // (and `promtool check metrics`) reserve for counters; they are left out.
    for (const g of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      r.removeSingleMetric(`evbridge_nodejs_${g}`);
    }
    const n = () => {
      if (!this.native) throw new Error('metrics.refresh() must run before a scrape');
      return this.native;
    };
    const one = (value: number): Sample[] => [{ value, labels: {} }];
    const add = (m: Metric) => r.registerMetric(m);
    if (source) this.registerNative(add, n, one);
    add(
      external('evbridge_event_age_seconds', 'Age of events (now minus engine timestamp) when drained and when sent, seconds.', 'histogram', () =>
        (['drain', 'send'] as const).flatMap((stage) =>
          histogramSamples('evbridge_event_age_seconds', AGE_BOUNDS_S, this.age[stage].counts, this.age[stage].sum, { stage }),
        ),
      ),
    );
    this.panicLogSuppressed = new Counter({
      name: 'evbridge_panic_log_suppressed_total',
      help: 'Panic messages not written to the log because of its rate limit (the panics are still counted).',
      registers: [r],
    });
    this.wsConnections = new Gauge({ name: 'evbridge_ws_connections', help: 'Open WebSocket connections.', registers: [r] });
    this.wsSent = new Counter({ name: 'evbridge_ws_events_sent_total', help: 'Events written to WebSocket subscribers.', registers: [r] });
    this.wsDropped = new Counter({
      name: 'evbridge_ws_events_dropped_total',
      help: 'Events matched for a WebSocket subscriber and not sent, by reason.',
      labelNames: ['reason'],
      registers: [r],
    });
    this.wsDisconnects = new Counter({
      name: 'evbridge_ws_disconnects_total',
      help: 'WebSocket connections closed, by reason.',
      labelNames: ['reason'],
      registers: [r],
    });
    this.wsRefused = new Counter({
      name: 'evbridge_ws_upgrades_refused_total',
      help: 'WebSocket upgrades refused before the handshake, by reason.',
      labelNames: ['reason'],
      registers: [r],
    });
    this.wsFilters = new Gauge({
      name: 'evbridge_ws_distinct_filters',
      help: 'Distinct (filter, encoding) pairs in use; each costs one encoding of every matching event.',
      registers: [r],
    });
    this.httpConnections = new Gauge({ name: 'evbridge_http_connections', help: 'Open TCP connections (HTTP and WebSocket).', registers: [r] });
    this.httpRefused = new Counter({
      name: 'evbridge_http_connections_refused_total',
      help: 'TCP connections closed at once because http.maxConnections were open.',
      labelNames: ['reason'],
      registers: [r],
    });
    this.authRefusals = new Counter({
      name: 'evbridge_auth_refusals_total',
      help: 'Tokens refused at the upgrade or in a refresh, and subscriptions refused by a token\'s rights, by reason.',
      labelNames: ['reason'],
      registers: [r],
    });
    this.wsAccepted = new Counter({
      name: 'evbridge_ws_connections_accepted_total',
      help: 'WebSocket connections accepted, by authentication mode.',
      labelNames: ['auth'],
      registers: [r],
    });
    this.keyReloads = new Counter({
      name: 'evbridge_auth_key_reloads_total',
      help: 'Re-reads of ws.jwt.keyFile on SIGHUP, by result (a failed one keeps the previous keys).',
      labelNames: ['result'],
      registers: [r],
    });
    // Every label value exists from the start, so dashboards see 0, not absence.
    for (const reason of AUTH_REFUSALS) this.authRefusals.inc({ reason }, 0);
    for (const auth of ['none', 'token', 'jwt']) this.wsAccepted.inc({ auth }, 0);
    for (const result of ['ok', 'failed']) this.keyReloads.inc({ result }, 0);
    for (const reason of WS_DROP_REASONS) this.wsDropped.inc({ reason }, 0);
    for (const reason of DISCONNECT_REASONS) this.wsDisconnects.inc({ reason }, 0);
    for (const reason of UPGRADE_REFUSALS) this.wsRefused.inc({ reason }, 0);
    this.httpRefused.inc({ reason: 'max_connections' }, 0);
  }

  /** The bridge's and the engine's counters, read from the native snapshot. */
  private registerNative(add: (m: Metric) => void, n: () => NativeStats, one: (value: number) => Sample[]) {
    const src = this.source as NativeSource;
    add(
      external('evbridge_json_native_chunks_total', 'JSON frames offered to the bridge\'s JSON writer, by result: written; too_large for its areas, or refused (only a malformed batch), both then written in JavaScript.', 'counter', () => [
        { value: this.jsonNative.written, labels: { result: 'written' } },
        { value: this.jsonNative.tooLarge, labels: { result: 'too_large' } },
        { value: this.jsonNative.refused, labels: { result: 'refused' } },
      ]),
    );
    add(external('evbridge_callbacks_total', 'Calls the engine made into the bridge callback, counted on entry.', 'counter', () => one(n().callbacks)));
    add(external('evbridge_callbacks_accepted_total', 'Events the bridge copied into the ring.', 'counter', () => one(n().accepted)));
    add(
      external('evbridge_callbacks_dropped_total', 'Valid events the bridge dropped, by reason.', 'counter', () =>
        NATIVE_LAYOUT.drop_reasons.map((reason) => ({ value: n().dropped[reason], labels: { reason } })),
      ),
    );
    add(external('evbridge_callbacks_panicked_total', 'Callbacks that panicked inside the bridge (caught; message logged).', 'counter', () => one(n().panicked)));
    add(external('evbridge_callbacks_late_total', 'Callbacks that ran later than the late threshold after the event timestamp.', 'counter', () => one(n().late)));
    add(
      external('evbridge_callbacks_invalid_total', 'Callbacks refused by validation, by reason.', 'counter', () =>
        NATIVE_LAYOUT.invalid_reasons.map((reason) => ({ value: n().invalid[reason], labels: { reason } })),
      ),
    );
    add(external('evbridge_callbacks_stale_total', 'Callbacks made with a revoked userdata token.', 'counter', () => one(n().stale)));
    const boundsS = NATIVE_LAYOUT.delay_bounds_ns.map((b) => b / 1e9);
    add(
      external('evbridge_callback_delay_seconds', 'Delay from the event timestamp to its callback, seconds.', 'histogram', () =>
        histogramSamples('evbridge_callback_delay_seconds', boundsS, n().delayCounts, n().delaySumNs / 1e9),
      ),
    );
    add(external('evbridge_events_delivered_total', 'Events handed from the ring to the daemon.', 'counter', () => one(n().delivered)));
    add(
      external('evbridge_panic_messages_dropped_total', 'Panic messages lost because the bridge\'s bounded panic log was full (the panics are still counted).', 'counter', () =>
        one(n().panicMessagesDropped),
      ),
    );
    add(external('evbridge_ring_used_bytes', 'Bytes in use in the ring.', 'gauge', () => one(n().ringUsedBytes)));
    add(external('evbridge_ring_capacity_bytes', 'Size of the ring, bytes.', 'gauge', () => one(n().ringCapacityBytes)));
    src.description.counters.forEach((c, i) => {
      add(external(`evbridge_engine_${c.name}`, c.help || `The engine plugin's counter ${c.name}.`, 'counter', () => one(this.engine[i] ?? 0)));
    });
  }

  /** Reads the native counters once; call before each scrape (no-op without a native source). */
  refresh(): NativeStats | undefined {
    if (!this.source) return undefined;
    this.native = this.source.stats();
    this.engine = this.source.engineCounters();
    return this.native;
  }

  eventAge(stage: AgeStage, seconds: number) {
    this.age[stage].observe(seconds);
  }
  /** Observes the age at `nowNs` (CLOCK_MONOTONIC ns) of every event of `b`. */
  eventAges(stage: AgeStage, b: EventBatch, nowNs: number) {
    const h = this.age[stage];
    for (let i = 0; i < b.count; i++) h.observe((nowNs - b.tsApproxNs(i)) / 1e9);
  }
  panicLogSuppressedBy(n: number) {
    this.panicLogSuppressed.inc(n);
  }
  wsConnected(delta: 1 | -1) {
    this.wsConnections.inc(delta);
  }
  wsEventsSent(n: number) {
    this.wsSent.inc(n);
  }
  wsEventsDropped(reason: WsDropReason, n: number) {
    this.wsDropped.inc({ reason }, n);
  }
  wsDisconnected(reason: DisconnectReason) {
    this.wsDisconnects.inc({ reason });
  }
  wsUpgradeRefused(reason: UpgradeRefusal) {
    this.wsRefused.inc({ reason });
  }
  wsDistinctFilters(n: number) {
    this.wsFilters.set(n);
  }
  httpConnection(delta: 1 | -1) {
    this.httpConnections.inc(delta);
  }
  authRefused(reason: AuthRefusal) {
    this.authRefusals.inc({ reason });
  }
  wsConnectionAccepted(auth: AuthMode) {
    this.wsAccepted.inc({ auth });
  }
  authKeyReload(result: 'ok' | 'failed') {
    this.keyReloads.inc({ result });
  }
  httpRefusedMaxConnections() {
    this.httpRefused.inc({ reason: 'max_connections' });
  }

  private natsIngest:
    | {
        messages: Counter;
        events: Counter;
        duplicates: Counter;
        dropped: Counter<'reason'>;
        retries: Counter<'reason'>;
        pendingMessages: Gauge;
        pendingBytes: Gauge;
      }
    | undefined;
  private edge:
    | { messages: Counter; events: Counter; invalid: Counter; duplicates: Counter; gaps: Counter; lagMessages: Gauge; lagSeconds: Gauge; epochs: Counter }
    | undefined;
  private natsConn: { connected: Gauge; reconnects: Counter; disconnects: Counter } | undefined;

  /** The NATS connection's metrics (ingest with NATS, and edge). */
  enableNatsConnection() {
    const r = this.registry;
    this.natsConn ??= {
      connected: new Gauge({ name: 'evbridge_nats_connected', help: '1 while connected to a NATS server, else 0.', registers: [r] }),
      reconnects: new Counter({ name: 'evbridge_nats_reconnects_total', help: 'Reconnections to NATS after a lost connection.', registers: [r] }),
      disconnects: new Counter({ name: 'evbridge_nats_disconnects_total', help: 'NATS connections lost.', registers: [r] }),
    };
  }
  natsConnected(up: boolean) {
    this.natsConn?.connected.set(up ? 1 : 0);
  }
  natsReconnected() {
    this.natsConn?.reconnects.inc();
  }
  natsDisconnected() {
    this.natsConn?.disconnects.inc();
  }

  /** The ingest's JetStream publishing metrics. */
  enableNatsIngest() {
    const r = this.registry;
    if (this.natsIngest) return;
    this.natsIngest = {
      messages: new Counter({ name: 'evbridge_nats_published_messages_total', help: 'JetStream messages of events acknowledged by the stream.', registers: [r] }),
      events: new Counter({ name: 'evbridge_nats_published_events_total', help: 'Events in acknowledged JetStream messages.', registers: [r] }),
      duplicates: new Counter({ name: 'evbridge_nats_duplicate_acks_total', help: 'Messages sent again that the stream already held (acknowledged as duplicates, stored once).', registers: [r] }),
      dropped: new Counter({ name: 'evbridge_nats_events_dropped_total', help: 'Drained events not published, by reason: queue_full (nats.maxPendingBytes reached), shutdown.', labelNames: ['reason'], registers: [r] }),
      retries: new Counter({ name: 'evbridge_nats_publish_retries_total', help: 'Times publishing went back to the first unacknowledged message, by reason.', labelNames: ['reason'], registers: [r] }),
      pendingMessages: new Gauge({ name: 'evbridge_nats_pending_messages', help: 'JetStream messages queued or awaiting acknowledgement.', registers: [r] }),
      pendingBytes: new Gauge({ name: 'evbridge_nats_pending_bytes', help: 'Bytes queued or awaiting acknowledgement (bounded by nats.maxPendingBytes).', registers: [r] }),
    };
    for (const reason of ['queue_full', 'shutdown']) this.natsIngest.dropped.inc({ reason }, 0);
    for (const reason of RETRY_REASONS) this.natsIngest.retries.inc({ reason }, 0);
  }
  natsPublished(messages: number, events: number) {
    this.natsIngest?.messages.inc(messages);
    this.natsIngest?.events.inc(events);
  }
  natsDuplicate() {
    this.natsIngest?.duplicates.inc();
  }
  natsDropped(reason: 'queue_full' | 'shutdown', events: number) {
    this.natsIngest?.dropped.inc({ reason }, events);
  }
  natsRetry(reason: RetryReason) {
    this.natsIngest?.retries.inc({ reason });
  }
  natsPending(messages: number, bytes: number) {
    this.natsIngest?.pendingMessages.set(messages);
    this.natsIngest?.pendingBytes.set(bytes);
  }

  /** The edge's JetStream consumer metrics. */
  enableEdge() {
    const r = this.registry;
    this.edge ??= {
      messages: new Counter({ name: 'evbridge_edge_messages_total', help: 'JetStream messages of events served by this edge.', registers: [r] }),
      events: new Counter({ name: 'evbridge_edge_events_total', help: 'Events read from JetStream and served.', registers: [r] }),
      invalid: new Counter({ name: 'evbridge_edge_messages_invalid_total', help: 'Messages skipped as unusable (headers, record layout, records); their seqs become a gap.', registers: [r] }),
      duplicates: new Counter({ name: 'evbridge_edge_duplicate_messages_total', help: 'Messages skipped because their seqs were served already.', registers: [r] }),
      gaps: new Counter({ name: 'evbridge_edge_gap_events_total', help: 'Seqs the ingest could not publish (or that arrived unusable), told to subscribers as ingest_dropped gaps.', registers: [r] }),
      lagMessages: new Gauge({ name: 'evbridge_edge_lag_messages', help: 'Stream messages not yet read by this edge.', registers: [r] }),
      lagSeconds: new Gauge({ name: 'evbridge_edge_lag_seconds', help: 'Age of the newest message read, by the stream\'s timestamp, seconds.', registers: [r] }),
      epochs: new Counter({ name: 'evbridge_edge_epochs_total', help: 'Epochs this edge has served (an ingest restart starts one).', registers: [r] }),
    };
  }
  edgeConsumed(messages: number, events: number) {
    this.edge?.messages.inc(messages);
    this.edge?.events.inc(events);
  }
  edgeInvalid() {
    this.edge?.invalid.inc();
  }
  edgeDuplicate() {
    this.edge?.duplicates.inc();
  }
  edgeGap(events: number) {
    this.edge?.gaps.inc(events);
  }
  edgeLag(messages: number, seconds: number) {
    this.edge?.lagMessages.set(messages);
    this.edge?.lagSeconds.set(seconds);
  }
  edgeEpoch() {
    this.edge?.epochs.inc();
  }

  /** The exposition text, after one native read. */
  async scrape(): Promise<string> {
    this.refresh();
    return this.registry.metrics();
  }
}
