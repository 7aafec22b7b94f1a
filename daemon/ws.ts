/**
 * WebSocket fan-out at `ws.path`: protocol v1, with events as JSON text
 * (`evbridge.v1.json`) or as ring records in binary frames
 * (`evbridge.v1.binary`).
 *
 * Each connection is a Session with subscriptions (filters by kind and
 * source) and one outgoing queue bounded in bytes. Every drained batch is
 * filtered and encoded once per distinct filter (shared by all sessions with
 * that filter), cut into frames of at most `ws.batchMaxEvents` events, and
 * queued. Slow consumers: past `ws.queueLowWatermarkBytes` the oldest queued
 * event frames are dropped, counted, and reported to the client in a gap
 * notice (sent ahead of the remaining frames of that subscription); a write
 * that makes no progress for `ws.writeStallTimeoutMs`, or a queue past
 * `ws.queueHardLimitBytes`, closes the connection with 4008. A slow session
 * never delays another: each has its own queue and only ever waits on its
 * own socket.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Observable, Subscription } from 'rxjs';
import { WebSocket, WebSocketServer } from 'ws';
import {
  CloseCode,
  ErrorCode,
  KIND_BY_NUMBER,
  KIND_NAMES,
  KIND_NUMBER,
  PROTOCOL_VERSION,
  type ServerMessage,
  SUBPROTOCOL_BINARY,
  SUBPROTOCOL_JSON,
  type SubscribeMessage,
} from '../protocol/messages.js';
import { encodeEventsHeader } from '../protocol/binary.js';
import { decodeClientFrame, encodeServerMessage } from '../protocol/json.js';
import type { Config } from './config.js';
import type { EventBatch } from './engine.js';
import type { DisconnectReason, Metrics } from './metrics.js';
import { type EventRange, ReplayWindow } from './replay.js';

type Encoding = 'json' | 'binary';

/**
 * Most bytes a session hands to ws before waiting for writes to complete:
 * 4 MiB, or less when the hard limit leaves less room above the watermark.
 * Measured: with 256 KiB a flooded binary client got 120 k ev/s, with 4 MiB
 * 386 k ev/s (with the first daemon benchmark, since replaced by
 * bench/e2e), because each drain turn's output must fit through one I/O
 * phase.
 */
const MAX_SEND_WINDOW_BYTES = 4 * 1024 * 1024;
/** Malformed frames in a row before the connection is closed. */
const MAX_BAD_FRAMES = 10;

/** One subscription: what it matches, and the start of its JSON messages. */
interface Filter {
  /** Kinds to match, as ring kind numbers; null for all. */
  kindNos: ReadonlySet<number> | null;
  sources: ReadonlySet<number> | null;
  /** Same for every subscription that matches the same events. */
  key: string;
  /** Events below this seq are not for this subscription (a future from_seq). */
  minSeq: number;
  /** `{"type":"events","sub":<id>,"events":` — the head fragment of its JSON events messages. */
  jsonHead: string;
}

/**
 * One events message, sent as two WebSocket frames (RFC 6455 §5.4
 * fragmentation): a small per-session head (the subscription id) and the
 * chunk body, which is the same Buffer for every session with that filter
 * and encoding. Clients see one message; the daemon copies nothing per
 * session.
 */
interface Frame {
  sub: string;
  head: string | Uint8Array;
  body: Buffer;
  binary: boolean;
  bytes: number;
  first: number;
  last: number;
  count: number;
  /** Engine timestamp of the frame's oldest event, ns (EventBatch.tsApproxNs). */
  oldestTsNs: number;
}

/** Events that match one filter, cut in frames: as the UTF-8 text of the
 * JSON events array and the message's closing brace, or as the concatenated
 * ring records (binary). Shared by every subscription with that filter and
 * encoding. */
interface Chunk {
  body: Buffer;
  first: number;
  last: number;
  count: number;
  oldestTsNs: number;
}

function filterOf(m: SubscribeMessage, minSeq: number): Filter {
  const kinds = m.kinds ? [...new Set(m.kinds)].sort() : null;
  const sources = m.sources ? new Set(m.sources) : null;
  return {
    kindNos: kinds ? new Set(kinds.map((k) => KIND_NUMBER[k])) : null,
    sources,
    minSeq,
    key: `${kinds ? kinds.join(',') : '*'}|${sources ? [...sources].sort((a, b) => a - b).join(',') : '*'}`,
    jsonHead: `{"type":"events","sub":${JSON.stringify(m.id)},"events":`,
  };
}

/** The gap notice for frames shed from one subscription. */
function slowConsumerGap(sub: string, g: { from: number; to: number; dropped: number }): string {
  return encodeServerMessage({ type: 'gap', sub, from: g.from, to: g.to, dropped: g.dropped, reason: 'slow_consumer' });
}

/**
 * One event as protocol v1 JSON, straight from the batch's bytes. The
 * output is exactly `JSON.stringify` of `{seq, kind, source, source_seq, ts,
 * time, payload}` (test/batch.test.ts checks it): every field is an integer,
 * a kind name, decimal digits or base64, none of which JSON escapes, so the
 * object and its reflection are skipped on this per-event path.
 */
export function eventJson(b: EventBatch, i: number): string {
  const p = b.payloadStart(i);
  return (
    `{"seq":${b.firstSeq + i},"kind":"${KIND_BY_NUMBER.get(b.kindNo(i)) ?? 'gen'}","source":${b.source(i)},` +
    `"source_seq":${b.sourceSeq(i)},"ts":"${b.tsString(i)}","time":${Math.round(b.timeMs(i))},` +
    `"payload":"${b.bytes.toString('base64', p, p + b.payloadLength(i))}"}`
  );
}

/** Encodes events of one batch as one chunk: the index range [from, to),
 * or just the listed indexes when `picked` is given. */
function chunkOf(b: EventBatch, from: number, to: number, picked: number[] | null, encoding: Encoding): Chunk {
  const count = picked ? picked.length : to - from;
  const at = (k: number) => (picked ? (picked[k] as number) : from + k);
  let oldest = b.tsApproxNs(at(0));
  for (let k = 1; k < count; k++) oldest = Math.min(oldest, b.tsApproxNs(at(k)));
  let body: Buffer;
  if (encoding === 'json') {
    const parts: string[] = new Array(count);
    for (let k = 0; k < count; k++) parts[k] = eventJson(b, at(k));
    body = Buffer.from(`[${parts.join(',')}]}`); // closes the message the head opened
  } else if (!picked) {
    body = b.records(from, to); // contiguous records: a view, no copy
  } else {
    // Runs of consecutive picked records are one view each; one run needs no copy.
    const runs: Buffer[] = [];
    for (let k = 0; k < count; ) {
      let e = k + 1;
      while (e < count && picked[e] === (picked[e - 1] as number) + 1) e++;
      runs.push(b.records(picked[k] as number, (picked[e - 1] as number) + 1));
      k = e;
    }
    body = runs.length === 1 ? (runs[0] as Buffer) : Buffer.concat(runs);
  }
  return { body, first: b.firstSeq + at(0), last: b.firstSeq + at(count - 1), count, oldestTsNs: oldest };
}

/** Filters and encodes events in frames of at most `max` events. */
function encodeChunks(ranges: readonly EventRange[], f: Filter, max: number, encoding: Encoding): Chunk[] {
  const chunks: Chunk[] = [];
  for (const { batch: b, start, end } of ranges) {
    const lo = Math.max(start, f.minSeq - b.firstSeq);
    if (!f.kindNos && !f.sources) {
      for (let a = lo; a < end; a += max) chunks.push(chunkOf(b, a, Math.min(end, a + max), null, encoding));
      continue;
    }
    let picked: number[] = [];
    for (let i = lo; i < end; i++) {
      if ((f.kindNos && !f.kindNos.has(b.kindNo(i))) || (f.sources && !f.sources.has(b.source(i)))) continue;
      picked.push(i);
      if (picked.length === max) {
        chunks.push(chunkOf(b, 0, 0, picked, encoding));
        picked = [];
      }
    }
    if (picked.length) chunks.push(chunkOf(b, 0, 0, picked, encoding));
  }
  return chunks;
}

/** Wall-clock minus monotonic clock, ns: lets binary clients turn engine
 * timestamps into wall time. */
function wallMinusMonoNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
}

/** CLOCK_MONOTONIC now, ns, as a double (the clock of EventBatch.tsApproxNs). */
function monoNowNs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e9 + ns;
}

class Session {
  readonly subs = new Map<string, Filter>();
  private queue: Frame[] = [];
  private queuedBytes = 0;
  private inflightBytes = 0;
  private readonly gaps = new Map<string, { from: number; to: number; dropped: number }>();
  private stallTimer: NodeJS.Timeout | undefined;
  private badFrames = 0;
  private readonly window: number;
  alive = true;
  closed = false;

  readonly encoding: Encoding;

  constructor(
    readonly ws: WebSocket,
    private readonly server: StreamServer,
    readonly remote: string,
  ) {
    this.encoding = ws.protocol === SUBPROTOCOL_BINARY ? 'binary' : 'json';
    const { queueHardLimitBytes, queueLowWatermarkBytes } = server.cfg.ws;
    this.window = Math.min(MAX_SEND_WINDOW_BYTES, queueHardLimitBytes - queueLowWatermarkBytes);
  }

  /** Queues this batch's frames for every matching subscription. */
  offer(encode: (f: Filter, encoding: Encoding) => Chunk[]) {
    if (this.closed) return;
    const clock = this.encoding === 'binary' ? wallMinusMonoNs() : 0n;
    for (const [id, filter] of this.subs) this.enqueue(id, filter, encode(filter, this.encoding), clock);
    this.shed();
    this.flush();
  }

  /** Queues chunks as frames; `clock` is wallMinusMonoNs() for binary heads. */
  private enqueue(id: string, filter: Filter, chunks: Chunk[], clock: bigint) {
    const binary = this.encoding === 'binary';
    for (const c of chunks) {
      const head = binary ? encodeEventsHeader(id, c.count, clock) : filter.jsonHead;
      const bytes = head.length + c.body.length;
      this.queue.push({ sub: id, head, body: c.body, binary, bytes, first: c.first, last: c.last, count: c.count, oldestTsNs: c.oldestTsNs });
      this.queuedBytes += bytes;
    }
  }

  /** Drops the oldest event frames while the queue is past the low watermark. */
  private shed() {
    const { queueLowWatermarkBytes, queueHardLimitBytes } = this.server.cfg.ws;
    let dropped = 0;
    while (this.queuedBytes > queueLowWatermarkBytes && this.queue.length > 1) {
      const f = this.queue.shift() as Frame;
      this.queuedBytes -= f.bytes;
      dropped += f.count;
      const g = this.gaps.get(f.sub);
      if (g) {
        g.to = f.last;
        g.dropped += f.count;
      } else {
        this.gaps.set(f.sub, { from: f.first, to: f.last, dropped: f.count });
      }
    }
    if (dropped) this.server.metrics.wsEventsDropped('slow_consumer', dropped);
    if (this.queuedBytes + this.inflightBytes > queueHardLimitBytes) this.drop('slow_consumer');
  }

  /** Sends one control message (a JSON text frame). */
  private write(data: string) {
    this.track(data.length, (done) => this.ws.send(data, done));
  }

  /** Sends an events message as its head and body fragments. */
  private writeFrame(f: Frame, after: () => void) {
    this.track(f.bytes, (done) =>
      this.sendFragments(f, (err) => {
        if (!err) after();
        done(err);
      }),
    );
  }

  private sendFragments(f: Frame, cb?: (err?: Error | null) => void) {
    this.ws.send(f.head, { binary: f.binary, fin: false });
    this.ws.send(f.body, { binary: f.binary, fin: true }, cb);
  }

  /** Counts `bytes` in flight until the send completes, and keeps the stall timer. */
  private track(bytes: number, send: (done: (err?: Error | null) => void) => void) {
    this.inflightBytes += bytes;
    this.armStall();
    send((err) => {
      this.inflightBytes -= bytes;
      if (err) return;
      this.armStall();
      this.flush();
    });
  }

  /** Sends pending gap notices, then queued frames, within the send window. */
  flush() {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    for (const [sub, g] of this.gaps) {
      if (this.inflightBytes >= this.window) return;
      this.gaps.delete(sub);
      this.write(slowConsumerGap(sub, g));
    }
    while (this.queue.length && this.inflightBytes < this.window) {
      const f = this.queue.shift() as Frame;
      this.queuedBytes -= f.bytes;
      const m = this.server.metrics;
      m.eventAge('send', (monoNowNs() - f.oldestTsNs) / 1e9);
      this.writeFrame(f, () => m.wsEventsSent(f.count));
    }
  }

  /** Shutdown: hands everything still queued to ws, ignoring the send window. */
  flushAll() {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    for (const [sub, g] of this.gaps) this.ws.send(slowConsumerGap(sub, g));
    this.gaps.clear();
    for (const f of this.queue) {
      this.sendFragments(f);
      this.server.metrics.wsEventsSent(f.count);
    }
    this.queue = [];
    this.queuedBytes = 0;
  }

  /** Starts, refreshes or clears the write-stall timer. */
  private armStall() {
    if (this.inflightBytes === 0) {
      clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
      return;
    }
    if (this.stallTimer) this.stallTimer.refresh();
    else this.stallTimer = setTimeout(() => this.drop('write_stall'), this.server.cfg.ws.writeStallTimeoutMs);
  }

  send(msg: ServerMessage) {
    if (this.ws.readyState === WebSocket.OPEN) this.write(encodeServerMessage(msg));
  }

  /** Closes a slow or dead consumer and counts why. */
  drop(reason: DisconnectReason) {
    if (this.closed) return;
    const code = reason === 'protocol_abuse' ? CloseCode.protocolAbuse : CloseCode.slowConsumer;
    this.server.log.warn({ remote: this.remote, reason, queuedBytes: this.queuedBytes, inflightBytes: this.inflightBytes }, 'disconnecting WebSocket client');
    this.finish(reason);
    if (reason === 'heartbeat' || reason === 'write_stall') this.ws.terminate();
    else this.ws.close(code, reason);
  }

  /** Bookkeeping when the connection ends, whoever ended it. */
  finish(reason: DisconnectReason) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stallTimer);
    this.queue = [];
    this.server.forget(this, reason);
  }

  onMessage(data: Buffer, isBinary: boolean) {
    if (isBinary) return this.bad(ErrorCode.unsupportedFrame, 'Binary frames are not part of the evbridge.v1.json subprotocol.');
    const r = decodeClientFrame(data.toString('utf8'));
    if (!r.ok) return this.bad(r.code, r.message);
    this.badFrames = 0;
    const m = r.message;
    if (m.type === 'subscribe') {
      if (this.subs.has(m.id)) return this.bad(ErrorCode.duplicateSubscription, `Subscription "${m.id}" already exists.`, m.id);
      if (this.subs.size >= this.server.cfg.ws.maxSubscriptions) {
        return this.bad(ErrorCode.tooManySubscriptions, `At most ${this.server.cfg.ws.maxSubscriptions} subscriptions per connection.`, m.id);
      }
      this.subscribe(m);
    } else {
      if (!this.subs.delete(m.id)) return this.bad(ErrorCode.unknownSubscription, `No subscription "${m.id}".`, m.id);
      const before = this.queue.length;
      this.queue = this.queue.filter((f) => f.sub !== m.id);
      if (this.queue.length !== before) this.queuedBytes = this.queue.reduce((s, f) => s + f.bytes, 0);
      this.gaps.delete(m.id);
      this.send({ type: 'unsubscribed', id: m.id });
    }
  }

  /**
   * Starts a subscription. With `from_seq`, events from the replay window
   * come first, then live ones, with no duplicate and no hole: both happen
   * on this thread between two batches, and live delivery starts at the
   * first seq after the window's last. A `from_seq` older than the window,
   * or from another epoch, gets a gap notice first.
   */
  private subscribe(m: SubscribeMessage) {
    const srv = this.server;
    const live = srv.lastSeq + 1;
    let from = m.from_seq ?? live;
    const gaps: ServerMessage[] = [];
    if (m.from_seq !== undefined && m.epoch !== undefined && m.epoch !== srv.epoch) {
      gaps.push({ type: 'gap', sub: m.id, from: m.from_seq, to: null, dropped: null, reason: 'new_epoch', old_epoch: m.epoch });
      from = srv.window.oldestSeq ?? live;
    } else if (from < live) {
      const oldest = srv.window.oldestSeq ?? live;
      if (from < oldest) {
        gaps.push({ type: 'gap', sub: m.id, from, to: oldest - 1, dropped: null, reason: 'out_of_window' });
        from = oldest;
      }
    }
    const filter = filterOf(m, from);
    const replay = from < live ? encodeChunks(srv.window.since(from), filter, srv.cfg.ws.batchMaxEvents, this.encoding) : [];
    this.subs.set(m.id, filter);
    const replayed = replay.reduce((n, c) => n + c.count, 0);
    this.send({ type: 'subscribed', id: m.id, kinds: m.kinds ?? null, sources: m.sources ?? null, next_seq: Math.max(live, from), replayed });
    for (const g of gaps) this.send(g);
    this.enqueue(m.id, filter, replay, wallMinusMonoNs());
    this.shed();
    this.flush();
  }

  private bad(code: (typeof ErrorCode)[keyof typeof ErrorCode], message: string, id?: string) {
    this.send({ type: 'error', code, message, ...(id ? { id } : {}) });
    if (++this.badFrames >= MAX_BAD_FRAMES) this.drop('protocol_abuse');
  }
}

export class StreamServer {
  readonly wss: WebSocketServer;
  private readonly sessions = new Set<Session>();
  private readonly sub: Subscription;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Highest sequence number seen so far. */
  lastSeq = 0;
  /** This run's sequence space; stated in every hello. */
  readonly epoch = randomUUID();
  readonly window: ReplayWindow;

  constructor(
    readonly cfg: Config,
    batches$: Observable<EventBatch>,
    readonly metrics: Metrics,
    readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: cfg.ws.maxClientFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      // Deliberate subprotocol choice: echo evbridge.v1.json when offered;
      // a client that offers only other protocols gets none echoed back
      // (browsers then fail the handshake, as RFC 6455 intends); a client
      // that offers none gets the JSON protocol without a header.
      handleProtocols: (offered) =>
        offered.has(SUBPROTOCOL_BINARY) ? SUBPROTOCOL_BINARY : offered.has(SUBPROTOCOL_JSON) ? SUBPROTOCOL_JSON : false,
    });
    this.window = new ReplayWindow(cfg.replay.maxEvents, cfg.replay.maxBytes);
    this.sub = batches$.subscribe({ next: (b) => this.fanOut(b) });
  }

  get connections(): number {
    return this.sessions.size;
  }

  private fanOut(batch: EventBatch) {
    this.lastSeq = batch.lastSeq;
    this.window.push(batch);
    if (this.sessions.size === 0) return;
    const cache = new Map<string, Chunk[]>();
    const max = this.cfg.ws.batchMaxEvents;
    const ranges: EventRange[] = [{ batch, start: 0, end: batch.count }];
    const encode = (f: Filter, encoding: Encoding): Chunk[] => {
      // A subscription waiting for a future seq gets its own encoding.
      const key = `${encoding}|${f.key}${f.minSeq > batch.firstSeq ? `|${f.minSeq}` : ''}`;
      let chunks = cache.get(key);
      if (!chunks) cache.set(key, (chunks = encodeChunks(ranges, f, max, encoding)));
      return chunks;
    };
    for (const s of this.sessions) s.offer(encode);
  }

  /** Completes an upgrade the HTTP layer has already authorised. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, req));
  }

  private attach(ws: WebSocket, req: IncomingMessage) {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const s = new Session(ws, this, remote);
    this.sessions.add(s);
    this.metrics.wsConnected(1);
    this.startHeartbeat();
    ws.on('pong', () => {
      s.alive = true;
    });
    ws.on('message', (data: Buffer, isBinary) => s.onMessage(data, isBinary));
    ws.on('error', (err) => this.log.debug({ remote, err: err.message }, 'WebSocket error'));
    ws.on('close', () => s.finish('client'));
    s.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      server: 'evbridge/0.1.0',
      epoch: this.epoch,
      encoding: s.encoding,
      kinds: KIND_NAMES,
      limits: { max_frame_bytes: this.cfg.ws.maxClientFrameBytes, max_subscriptions: this.cfg.ws.maxSubscriptions, batch_max_events: this.cfg.ws.batchMaxEvents },
    });
  }

  /** Called once per session when it ends. */
  forget(s: Session, reason: DisconnectReason) {
    if (!this.sessions.delete(s)) return;
    this.metrics.wsConnected(-1);
    this.metrics.wsDisconnected(reason);
    if (this.sessions.size === 0) this.stopHeartbeat();
  }

  private startHeartbeat() {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      for (const s of this.sessions) {
        if (!s.alive) {
          s.drop('heartbeat');
          continue;
        }
        s.alive = false;
        s.ws.ping();
      }
    }, this.cfg.ws.heartbeatIntervalMs);
  }

  private stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /**
   * Shutdown: stops taking batches, flushes what each client has queued
   * (bounded by `timeoutMs`), then closes every connection with 1001.
   */
  async close(timeoutMs: number): Promise<void> {
    this.sub.unsubscribe();
    this.stopHeartbeat();
    const sessions = [...this.sessions];
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              s.ws.terminate();
              resolve();
            }, timeoutMs);
            s.ws.once('close', () => {
              clearTimeout(t);
              resolve();
            });
            s.flushAll();
            s.finish('shutdown');
            s.ws.close(CloseCode.goingAway, 'server shutting down');
          }),
      ),
    );
    this.wss.close();
  }
}
