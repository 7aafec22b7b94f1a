/**
 * The WebSocket server at `ws.path`: protocol v1, with events as JSON text
 * (`evbridge.v1.json`) or as ring records in binary frames
 * (`evbridge.v1.binary`).
 *
 * Fan-out: every drained batch goes into the replay window, then is offered
 * to every session. It is filtered and encoded once per distinct filter and
 * encoding (shared by every subscription with that pair; their number is
 * bounded by `ws.maxDistinctFilters`), cut into frames of at most
 * `ws.batchMaxEvents` events. Each session queues, sheds and writes on its
 * own (session.ts): a slow session never delays another.
 *
 * Threading: main thread only.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Observable, Subscription as RxSubscription } from 'rxjs';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Authenticator, Principal } from '../auth.js';
import type { EventBatch } from '../batch.js';
import type { Config } from '../config.js';
import type { EngineDescription, KindTable } from '../engine.js';
import type { DisconnectReason, Metrics } from '../metrics.js';
import { ReplayWindow } from '../replay.js';
import {
  FEATURES,
  PROTOCOL_REVISION,
  PROTOCOL_VERSION,
  SUBPROTOCOL_BINARY,
  SUBPROTOCOL_JSON,
} from '../../protocol/messages.js';
import { type Chunk, type Encoding, encodeChunks } from './encode.js';
import type { Filter } from './filter.js';
import { FilterRegistry, Session, type SessionDeps, type Timers, realTimers, sessionBounds } from './session.js';

export interface StreamServerOptions {
  readonly cfg: Config;
  readonly batches$: Observable<EventBatch>;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly kinds: KindTable;
  readonly engine: EngineDescription;
  /** The daemon's version, for the hello. */
  readonly version: string;
  /** Checks `refresh` tokens (JWT access). */
  readonly auth?: Authenticator;
  /** This run's epoch; a new random one when absent (an edge takes the ingest's). */
  readonly epoch?: string;
  readonly timers?: Timers;
}

/**
 * Serves `/v1/stream`: sessions, fan-out of the batch stream, the replay
 * window, the heartbeat. Create one per daemon; `close` shuts it down.
 */
export class StreamServer {
  readonly wss: WebSocketServer;
  /** Open sessions and their sockets. */
  private readonly sessions = new Map<Session, WebSocket>();
  private readonly sub: RxSubscription;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Highest sequence number drained so far. */
  lastSeq = 0;
  /** This run's sequence space; stated in every hello. */
  epoch: string;
  readonly window: ReplayWindow;
  readonly filters: FilterRegistry;
  private deps: SessionDeps;
  private kinds: KindTable;
  private engine: EngineDescription;
  private sessionFaults = 0;

  constructor(private readonly o: StreamServerOptions) {
    const { cfg, metrics } = o;
    this.epoch = o.epoch ?? randomUUID();
    this.kinds = o.kinds;
    this.engine = o.engine;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: cfg.ws.maxClientFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      // Deliberate subprotocol choice: echo evbridge.v1.binary or
      // evbridge.v1.json when offered (binary first); a client that offers
      // only other protocols gets none echoed back (browsers then fail the
      // handshake, as RFC 6455 intends); a client that offers none gets the
      // JSON protocol without a header.
      handleProtocols: (offered) =>
        offered.has(SUBPROTOCOL_BINARY) ? SUBPROTOCOL_BINARY : offered.has(SUBPROTOCOL_JSON) ? SUBPROTOCOL_JSON : false,
    });
    this.window = new ReplayWindow(cfg.replay.maxEvents, cfg.replay.maxBytes);
    this.filters = new FilterRegistry(cfg.ws.maxDistinctFilters, (n) => metrics.wsDistinctFilters(n));
    this.deps = this.makeDeps();
    this.sub = o.batches$.subscribe({ next: (b) => this.fanOut(b) });
  }

  private makeDeps(): SessionDeps {
    const o = this.o;
    const { cfg, metrics } = o;
    return {
      cfg: cfg.ws,
      kinds: this.kinds,
      window: this.window,
      metrics,
      log: o.log,
      timers: o.timers ?? realTimers,
      filters: this.filters,
      epoch: this.epoch,
      lastSeq: () => this.lastSeq,
      onEnd: (s, reason) => this.forget(s, reason),
      injectFault: () => this.sessionFaults > 0 && this.sessionFaults-- > 0,
      ...(o.auth ? { auth: { authenticate: (t: string) => (o.auth as Authenticator).authenticate(t), refused: (r) => metrics.authRefused(r) } } : {}),
    };
  }

  /**
   * Edge role: the events now come from another epoch (an ingest restart),
   * whose engine may have other kinds. Every session is closed with 1012
   * (its client reconnects and resumes into a `new_epoch` gap), the replay
   * window is emptied, and new sessions get the new epoch and kinds.
   */
  resetEpoch(epoch: string, kinds: KindTable, engine: EngineDescription) {
    for (const s of [...this.sessions.keys()]) s.epochChanged();
    this.window.clear();
    this.lastSeq = 0;
    this.epoch = epoch;
    this.kinds = kinds;
    this.engine = engine;
    this.deps = this.makeDeps();
  }

  /** Edge role: seqs `[from, to]` will never arrive; the window restarts after them. */
  upstreamGap(from: number, to: number) {
    this.window.clear();
    this.lastSeq = to;
    for (const s of this.sessions.keys()) s.upstreamGap(from, to);
  }

  /** Open sessions. */
  get connections(): number {
    return this.sessions.size;
  }

  /** What the status page shows of each open connection. */
  sessionSummaries() {
    return [...this.sessions.keys()].map((s) => s.summary());
  }

  /** Fault injection (tests): the next `n` session entry points throw. */
  injectSessionFaults(n: number) {
    this.sessionFaults += n;
  }

  private fanOut(batch: EventBatch) {
    this.lastSeq = batch.lastSeq;
    this.window.push(batch);
    if (this.sessions.size === 0) return;
    const cache = new Map<string, readonly Chunk[]>();
    const max = this.o.cfg.ws.batchMaxEvents;
    const { frameBytes } = sessionBounds(this.o.cfg.ws);
    const ranges = [{ batch, start: 0, end: batch.count }];
    const encode = (f: Filter, minSeq: number, encoding: Encoding): readonly Chunk[] => {
      // A subscription waiting for a future seq gets its own encoding.
      const key = `${encoding}|${f.key}${minSeq > batch.firstSeq ? `|${minSeq}` : ''}`;
      let chunks = cache.get(key);
      if (!chunks) cache.set(key, (chunks = encodeChunks(ranges, f, minSeq, max, encoding, this.kinds, frameBytes)));
      return chunks;
    };
    for (const s of this.sessions.keys()) s.offer(batch, encode);
  }

  /** Completes an upgrade the HTTP layer has already authorised, for `principal`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, principal: Principal) {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, req, principal));
  }

  private attach(ws: WebSocket, req: IncomingMessage, principal: Principal) {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const s = new Session(ws, this.deps, remote, ws.protocol === SUBPROTOCOL_BINARY, principal);
    this.sessions.set(s, ws);
    this.o.metrics.wsConnected(1);
    this.o.metrics.wsConnectionAccepted(principal.mode);
    if (principal.mode === 'jwt') this.o.log.info({ remote, user: principal.sub, exp: principal.exp, rights: principal.rights }, 'WebSocket client authenticated');
    this.startHeartbeat();
    ws.on('pong', () => {
      s.alive = true;
    });
    ws.on('message', (data: Buffer, isBinary) => s.onMessage(data, isBinary));
    ws.on('error', (err) => this.o.log.debug({ remote, err }, 'WebSocket error'));
    ws.on('close', () => s.onSocketClose());
    const e = this.engine;
    const c = this.o.cfg.ws;
    s.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      revision: PROTOCOL_REVISION,
      features: FEATURES,
      server: `evbridge/${this.o.version}`,
      epoch: this.epoch,
      encoding: s.encoding,
      kinds: this.kinds.list.map((k) => k.name),
      engine: { name: e.name, version: e.version, kinds: [...this.kinds.list], sources: e.sources },
      limits: {
        max_frame_bytes: c.maxClientFrameBytes,
        max_subscriptions: c.maxSubscriptions,
        batch_max_events: c.batchMaxEvents,
        max_subscribes_per_second: c.maxSubscribesPerSecond,
      },
      auth: { mode: principal.mode, sub: principal.sub, exp: principal.exp, rights: principal.rights },
    });
  }

  /** Called once per session when it ends. */
  private forget(s: Session, reason: DisconnectReason) {
    if (!this.sessions.delete(s)) return;
    this.o.metrics.wsConnected(-1);
    this.o.metrics.wsDisconnected(reason);
    if (this.sessions.size === 0) this.stopHeartbeat();
  }

  private startHeartbeat() {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      for (const [s, ws] of [...this.sessions]) {
        if (!s.alive) {
          s.heartbeatLost();
          continue;
        }
        s.alive = false;
        ws.ping();
      }
    }, this.o.cfg.ws.heartbeatIntervalMs);
  }

  private stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /**
   * Shutdown: stops taking batches, hands what each client has queued to its
   * socket and closes it with 1001; resolves when every socket has closed,
   * or after `timeoutMs`, when the rest are destroyed.
   */
  async close(timeoutMs: number): Promise<void> {
    this.sub.unsubscribe();
    this.stopHeartbeat();
    const sessions = [...this.sessions.keys()];
    const sockets = [...this.sessions.values()];
    const closed = sockets.map((ws) => new Promise<void>((resolve) => (ws.readyState === ws.CLOSED ? resolve() : ws.once('close', () => resolve()))));
    for (const s of sessions) s.shutdown();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closed),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          for (const ws of sockets) ws.terminate();
          resolve();
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.wss.close();
  }
}
