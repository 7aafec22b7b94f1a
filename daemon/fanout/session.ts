/**
 * One WebSocket connection: its subscriptions and its outgoing queue.
 *
 * Bounds (every byte queued for the client counts, whatever it carries):
 * - Everything the session sends (events, gap notices, control replies) goes
 *   through one queue, bounded in bytes. Past `ws.queueLowWatermarkBytes` the
 *   oldest event frames are dropped, counted, and replaced in place by a gap
 *   notice for their subscription (so a gap arrives exactly where its events
 *   would have). Past `ws.queueHardLimitBytes`, queued and in flight
 *   together, the client is cut off: gap notices for what was queued, then
 *   close 4008.
 * - At most `sendWindow` bytes are handed to the socket before their writes
 *   complete. A write that completes none of its bytes for
 *   `ws.writeStallTimeoutMs` is a stall: gap notices, then 4008. Only
 *   completed writes count as progress; new writes never postpone the stall.
 * - Client frames cost tokens (`ws.maxSubscribesPerSecond`, a burst of as
 *   many); past it, close 4010. Ten malformed frames in a row (not JSON, not
 *   a valid message, binary): close 4009.
 * - Replay (a subscribe with `from_seq`) is produced as the socket takes it:
 *   slices of at most `REPLAY_SLICE_EVENTS` events, read from the replay
 *   window only while the send window has room, each slice on its own turn
 *   of the event loop. A resume of the whole window arrives complete at a
 *   client that reads; one that falls behind the window gets an
 *   `out_of_window` gap and goes on from the oldest event held.
 *
 * Accounting: per subscription, every event that matched (live, or read for
 * replay) is counted once, and later either as sent (its write completed) or
 * as dropped with a reason (shed, unsubscribed, or queued or in flight when
 * the connection ended, by its disconnect reason). When the connection has
 * ended and its last write has completed, `matched = sent + dropped` holds
 * for every subscription, and the session logs the three.
 *
 * Faults: every entry point (a client frame, a batch, a write completion, a
 * replay slice) runs inside one guard; an exception closes this session with
 * 1011, is logged and counted (`session_error`), and reaches nothing else.
 *
 * Threading: main thread only.
 */
import { RateLimiter } from 'limiter';
import { AuthError, type AuthRefusal, type Principal, exceeds } from '../auth.js';
import type { Logger } from 'pino';
import { WALL_MINUS_MONO_NS, sourceMonoNowNs } from '../clock.js';
import type { Config } from '../config.js';
import type { KindTable } from '../engine.js';
import { Errors } from '../errors.js';
import type { DisconnectReason, Metrics, WsDropReason } from '../metrics.js';
import type { ReplayWindow } from '../replay.js';
import type { EventBatch } from '../batch.js';
import { encodeEventsHeader } from '../../protocol/binary.js';
import { encodeServerMessage, decodeClientFrame } from '../../protocol/json.js';
import { CloseCode, ErrorCode, type ErrorCodeValue, type GapReason, type ServerMessage, type SubscribeMessage } from '../../protocol/messages.js';
import { type Chunk, type Encoding, encodeChunks } from './encode.js';
import { type Filter, filterOf } from './filter.js';

/** Most bytes handed to the socket before their writes complete: 4 MiB, or
 * half the room between the watermark and the hard limit when that is less
 * (the other half is for the frames that may sit past each bound, see
 * `frameBytes`). Measured: with 256 KiB a flooded binary client got 120 k
 * ev/s, with 4 MiB 386 k ev/s (bench/e2e), because each drain turn's output
 * must fit through one I/O phase. */
export const MAX_SEND_WINDOW_BYTES = 4 * 1024 * 1024;
/** Most record bytes per events frame: 1 MiB, or a quarter of the room
 * between the watermark and the hard limit when that is less (at least
 * 4 KiB). With the window at half that room, a client that merely reads
 * slowly (shed to the watermark, a full window in flight, a frame past each)
 * stays within the hard limit. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** The send window and the frame size of a session with these limits. */
export function sessionBounds(c: Pick<Config['ws'], 'queueHardLimitBytes' | 'queueLowWatermarkBytes'>): { sendWindow: number; frameBytes: number } {
  const room = c.queueHardLimitBytes - c.queueLowWatermarkBytes;
  return { sendWindow: Math.min(MAX_SEND_WINDOW_BYTES, Math.floor(room / 2)), frameBytes: Math.max(4096, Math.min(MAX_FRAME_BYTES, Math.floor(room / 4))) };
}
/** Malformed client frames in a row before the connection is closed (4009). */
export const MAX_BAD_FRAMES = 10;
/** Events read from the replay window per slice (one turn of the event loop):
 * 1,024 JSON events take about 1.5 ms to encode (bench/RESULTS.md). */
export const REPLAY_SLICE_EVENTS = 1024;
/** Bytes read from the replay window per slice. */
export const REPLAY_SLICE_BYTES = 1 << 20;
/** After a close frame, how long the peer has to complete the handshake
 * before the socket is destroyed, ms. */
export const CLOSE_GRACE_MS = 5000;
/** Longest single timer, ms: Node's setTimeout limit (2^31 - 1); a token
 * that expires later is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A connection without expiring credentials and without restrictions. */
export const OPEN_PRINCIPAL: Principal = { mode: 'none', sub: null, exp: null, rights: null };

/** The subset of ws's WebSocket a session uses (tests pass a fake). */
export interface SessionSocket {
  readonly readyState: number;
  send(data: string | Uint8Array, options: { binary: boolean; fin?: boolean }, cb?: (err?: Error | null) => void): void;
  close(code: number, reason: string): void;
  terminate(): void;
}

/** The socket is open (WebSocket.OPEN). */
export const OPEN = 1;

/** Timers and a clock (tests pass fake ones and advance them by hand). */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Runs `fn` on a later turn of the event loop. */
  defer(fn: () => void): void;
  /** Wall-clock time, Unix ms (token expiry); Date.now() when absent. */
  wall?(): number;
}

/** The real timers: Node's, unref'd so that they never keep a closing daemon alive. */
export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  defer: (fn) => void setImmediate(fn),
};

/** Distinct (encoding, filter) keys in use, counted, with a limit. */
export class FilterRegistry {
  private readonly refs = new Map<string, number>();
  constructor(
    private readonly max: number,
    private readonly onChange: (n: number) => void = () => {},
  ) {}
  /** Takes a reference; false when the key is new and the limit is reached. */
  acquire(key: string): boolean {
    const n = this.refs.get(key);
    if (n === undefined && this.refs.size >= this.max) return false;
    this.refs.set(key, (n ?? 0) + 1);
    this.onChange(this.refs.size);
    return true;
  }
  release(key: string) {
    const n = this.refs.get(key) ?? 0;
    if (n <= 1) this.refs.delete(key);
    else this.refs.set(key, n - 1);
    this.onChange(this.refs.size);
  }
  get size(): number {
    return this.refs.size;
  }
}

/** What a session needs from its server. */
export interface SessionDeps {
  readonly cfg: Config['ws'];
  readonly kinds: KindTable;
  readonly window: ReplayWindow;
  readonly metrics: Pick<Metrics, 'wsEventsSent' | 'wsEventsDropped' | 'eventAge'>;
  readonly log: Logger;
  readonly timers: Timers;
  readonly filters: FilterRegistry;
  readonly epoch: string;
  /** Seq of the newest event drained so far (0 before the first). */
  lastSeq(): number;
  /** Called once when the session ends, with why. */
  onEnd(session: Session, reason: DisconnectReason): void;
  /** Fault injection: true to make this call throw (tests). */
  injectFault?(): boolean;
  /** Token checks for `refresh` messages, and the refusal counter. */
  readonly auth?: {
    authenticate(token: string): Promise<Principal>;
    refused(reason: AuthRefusal): void;
  };
}

/** What the status page shows of one connection. */
export interface SessionSummary {
  remote: string;
  /** The token's `sub` (JWT access), else null. */
  user: string | null;
  /** When the token expires, Unix seconds; null when it does not. */
  expires: number | null;
  encoding: 'json' | 'binary';
  /** Unix ms. */
  connectedAt: number;
  queuedBytes: number;
  inflightBytes: number;
  subscriptions: {
    id: string;
    kinds: readonly string[] | null;
    sources: readonly number[] | null;
    subjects: readonly string[] | null;
    replaying: boolean;
    counts: SubscriptionCounts;
  }[];
}

/** Counts of one subscription (see the module's "Accounting"). */
export interface SubscriptionCounts {
  matched: number;
  sent: number;
  dropped: Partial<Record<WsDropReason, number>>;
}

class Subscription {
  /** `{"type":"events","sub":<id>,"events":` — the head fragment of its JSON messages. */
  readonly jsonHead: string;
  /** Bytes of `jsonHead` in UTF-8 (an id may be any UTF-8). */
  readonly jsonHeadBytes: number;
  /** The filter as the client asked for it (for the status page). */
  asked: { kinds: readonly string[] | null; sources: readonly number[] | null; subjects: readonly string[] | null } = {
    kinds: null,
    sources: null,
    subjects: null,
  };
  /** Next seq to read from the replay window; null once live. */
  replayCursor: number | null = null;
  readonly counts: SubscriptionCounts = { matched: 0, sent: 0, dropped: {} };
  constructor(
    readonly id: string,
    readonly filter: Filter,
    /** How its chunks are written (the connection's subprotocol and the subscribe's `format`). */
    readonly encoding: Encoding,
    /** The FilterRegistry key. */
    readonly key: string,
    /** Events below this seq are not for this subscription (a future from_seq). */
    readonly minSeq: number,
  ) {
    this.jsonHead = `{"type":"events","sub":${JSON.stringify(id)},"events":`;
    this.jsonHeadBytes = Buffer.byteLength(this.jsonHead);
  }
}

/** An events message: two fragments (RFC 6455 §5.4), a small per-subscription
 * head and the chunk body shared by every subscription with that filter. */
interface EventsOut {
  readonly type: 'events';
  readonly sub: Subscription;
  readonly head: string | Uint8Array;
  /** Bytes of `head` on the wire. */
  readonly headBytes: number;
  readonly chunk: Chunk;
  /** Queued: head and `chunk.bytes` when queued (a bound for JSON not yet
   * written); from its write on: the bytes handed to the socket. */
  bytes: number;
}
/** A gap notice; a `slow_consumer` one grows while its events are shed. */
interface GapOut {
  readonly type: 'gap';
  readonly sub: Subscription;
  from: number;
  to: number | null;
  dropped: number | null;
  readonly reason: GapReason;
  readonly oldEpoch?: string;
  readonly bytes: number;
}
interface ControlOut {
  readonly type: 'control';
  readonly data: string;
  readonly bytes: number;
}
type Out = EventsOut | GapOut | ControlOut;

/** Bytes a gap notice takes, for the queue's bounds (its JSON is below this). */
const GAP_BYTES = 256;

function gapMessage(g: GapOut): string {
  return encodeServerMessage({
    type: 'gap',
    sub: g.sub.id,
    from: g.from,
    to: g.to,
    dropped: g.dropped,
    reason: g.reason,
    ...(g.oldEpoch !== undefined ? { old_epoch: g.oldEpoch } : {}),
  });
}

const CLOSE_CODES: Record<Exclude<DisconnectReason, 'client' | 'shutdown' | 'heartbeat'>, number> = {
  slow_consumer: CloseCode.slowConsumer,
  write_stall: CloseCode.slowConsumer,
  protocol_abuse: CloseCode.protocolAbuse,
  rate_limited: CloseCode.rateLimited,
  session_error: CloseCode.internalError,
  token_expired: CloseCode.tokenExpired,
  new_epoch: CloseCode.serviceRestart,
};

export class Session {
  readonly subs = new Map<string, Subscription>();
  /** The connection's subprotocol. */
  readonly encoding: 'json' | 'binary';
  /** Answered the last ping (the server's heartbeat). */
  alive = true;
  private queue: Out[] = [];
  private queuedBytes = 0;
  private inflightBytes = 0;
  private readonly sendWindow: number;
  private readonly frameBytes: number;
  private readonly rate: RateLimiter;
  private badFrames = 0;
  private stallTimer: unknown;
  private lastProgress = 0;
  private pumpScheduled = false;
  /** Why the session ended; undefined while it runs. */
  private ended: DisconnectReason | undefined;
  private socketClosed = false;
  private summaryLogged = false;
  /** Counts of subscriptions that were removed, for the closing summary. */
  private readonly past: { id: string; counts: SubscriptionCounts }[] = [];
  private expiryTimer: unknown;
  private refreshing = false;

  constructor(
    private readonly ws: SessionSocket,
    private readonly deps: SessionDeps,
    readonly remote: string,
    binary: boolean,
    /** Who connected and what they may read (auth.ts). */
    private principal: Principal = OPEN_PRINCIPAL,
  ) {
    this.encoding = binary ? 'binary' : 'json';
    const c = deps.cfg;
    ({ sendWindow: this.sendWindow, frameBytes: this.frameBytes } = sessionBounds(c));
    this.rate = new RateLimiter({ tokensPerInterval: c.maxSubscribesPerSecond, interval: 'second' });
    this.armExpiry();
  }

  /** The connection's credentials as the hello states them. */
  get auth(): Principal {
    return this.principal;
  }

  /** Arms the expiry timer for the token's `exp` (in steps of at most
   * MAX_TIMER_MS); at expiry the connection is closed with 4011. Always
   * fires on a later turn, never from the constructor. */
  private armExpiry() {
    if (this.expiryTimer !== undefined) this.deps.timers.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    const exp = this.principal.exp;
    if (exp === null || this.ended) return;
    const left = exp * 1000 - (this.deps.timers.wall?.() ?? Date.now());
    this.expiryTimer = this.deps.timers.setTimeout(() => {
      this.expiryTimer = undefined;
      if (this.ended) return;
      if (exp * 1000 - (this.deps.timers.wall?.() ?? Date.now()) > 0) return this.armExpiry();
      this.guard('token expiry', () => {
        this.deps.log.info({ remote: this.remote, user: this.principal.sub }, 'access token expired: closing the connection (4011)');
        this.cutOff('token_expired');
      });
    }, Math.max(0, Math.min(left, MAX_TIMER_MS)));
  }

  /** Bytes queued, not yet handed to the socket. */
  get queued(): number {
    return this.queuedBytes;
  }
  /** Bytes handed to the socket whose writes have not completed. */
  get inflight(): number {
    return this.inflightBytes;
  }
  /** Whether the session has ended. */
  get isEnded(): boolean {
    return this.ended !== undefined;
  }
  /** When the session began, Unix ms. */
  readonly connectedAt = Date.now();

  /** What the status page shows of this connection. */
  summary(): SessionSummary {
    return {
      remote: this.remote,
      user: this.principal.sub,
      expires: this.principal.exp,
      encoding: this.encoding,
      connectedAt: this.connectedAt,
      queuedBytes: this.queuedBytes,
      inflightBytes: this.inflightBytes,
      subscriptions: [...this.subs.values()].map((s) => ({ id: s.id, ...s.asked, replaying: s.replayCursor !== null, counts: s.counts })),
    };
  }

  /** Counts of every subscription, current and removed. */
  counts(): { id: string; counts: SubscriptionCounts }[] {
    return [...this.past, ...[...this.subs.values()].map((s) => ({ id: s.id, counts: s.counts }))];
  }

  /** Runs `fn`; an exception ends this session (1011) and nothing else. */
  private guard(what: string, fn: () => void) {
    try {
      if (this.deps.injectFault?.()) throw new Error(`injected session fault (${what})`);
      fn();
    } catch (err) {
      this.deps.log.error({ err: Errors.EVB_ERR_SESSION(this.remote, (err as Error).message), cause: err, remote: this.remote, during: what }, 'WebSocket session failed');
      try {
        this.cutOff('session_error');
      } catch {
        this.finish('session_error');
        this.ws.terminate();
      }
    }
  }

  /** A control reply, through the bounded queue; written as the window allows. */
  send(msg: ServerMessage) {
    if (this.ended) return;
    const data = encodeServerMessage(msg);
    this.push({ type: 'control', data, bytes: Buffer.byteLength(data) });
    this.settle();
  }

  private push(out: Out) {
    this.queue.push(out);
    this.queuedBytes += out.bytes;
  }

  /** Enforces the watermark and the hard limit, then writes what the window allows. */
  private settle() {
    this.shed();
    if (this.ended) return;
    if (this.queuedBytes + this.inflightBytes > this.deps.cfg.queueHardLimitBytes) {
      this.cutOff('slow_consumer');
      return;
    }
    this.flush();
  }

  /** Drops the oldest event frames while the queue is past the low watermark;
   * each is replaced in place by (or merged into) a gap notice. The newest
   * event frame always stays. */
  private shed() {
    const low = this.deps.cfg.queueLowWatermarkBytes;
    if (this.queuedBytes <= low) return;
    let lastEvents = this.queue.findLastIndex((o) => o.type === 'events');
    let dropped = 0;
    for (let i = 0; i < lastEvents && this.queuedBytes > low; i++) {
      const o = this.queue[i] as Out;
      if (o.type !== 'events') continue;
      const c = o.chunk;
      this.dropEvents(o.sub, 'slow_consumer', c.count);
      dropped += c.count;
      // Merge into the subscription's latest gap before this point, if no
      // events frame of it lies between; else this frame becomes the gap.
      let merged = false;
      for (let j = i - 1; j >= 0; j--) {
        const p = this.queue[j] as Out;
        if (p.type === 'control' || p.sub !== o.sub) continue;
        if (p.type === 'gap' && p.reason === 'slow_consumer') {
          p.to = c.last;
          p.dropped = (p.dropped ?? 0) + c.count;
          merged = true;
        }
        break;
      }
      this.queuedBytes -= o.bytes;
      if (merged) {
        this.queue.splice(i, 1);
        i--;
        lastEvents--;
      } else {
        const gap: GapOut = { type: 'gap', sub: o.sub, from: c.first, to: c.last, dropped: c.count, reason: 'slow_consumer', bytes: GAP_BYTES };
        this.queue[i] = gap;
        this.queuedBytes += gap.bytes;
      }
    }
    if (dropped) this.deps.log.debug({ remote: this.remote, dropped }, 'shed events for a slow consumer');
  }

  private dropEvents(sub: Subscription, reason: WsDropReason, n: number) {
    sub.counts.dropped[reason] = (sub.counts.dropped[reason] ?? 0) + n;
    this.deps.metrics.wsEventsDropped(reason, n);
  }

  /** Hands queued frames to the socket while the send window has room, then
   * schedules replay when the queue is empty. */
  private flush() {
    if (this.ended || this.ws.readyState !== OPEN) return;
    while (this.queue.length && this.inflightBytes < this.sendWindow) {
      const o = this.queue.shift() as Out;
      this.queuedBytes -= o.bytes;
      this.write(o);
    }
    if (this.queue.length === 0 && this.inflightBytes < this.sendWindow) this.schedulePump();
  }

  private write(o: Out) {
    // A JSON chunk is encoded here, on its first write to any session
    // (encode.ts): its exact size replaces the bound it was queued with.
    if (o.type === 'events') o.bytes = o.headBytes + o.chunk.body.length;
    if (this.inflightBytes === 0) this.armStall();
    this.inflightBytes += o.bytes;
    const done = (err?: Error | null) => this.guard('write completion', () => this.written(o, err));
    if (o.type === 'events') {
      this.deps.metrics.eventAge('send', (sourceMonoNowNs() - o.chunk.oldestTsNs) / 1e9);
      const binary = this.encoding === 'binary';
      this.ws.send(o.head, { binary, fin: false });
      this.ws.send(o.chunk.body, { binary, fin: true }, done);
    } else {
      this.ws.send(o.type === 'gap' ? gapMessage(o) : o.data, { binary: false }, done);
    }
  }

  private written(o: Out, err: Error | null | undefined) {
    this.inflightBytes -= o.bytes;
    if (o.type === 'events') {
      if (err) this.dropEvents(o.sub, this.ended ?? 'client', o.chunk.count);
      else {
        o.sub.counts.sent += o.chunk.count;
        this.deps.metrics.wsEventsSent(o.chunk.count);
      }
    }
    if (!err) this.lastProgress = this.deps.timers.now();
    if (this.inflightBytes === 0) this.clearStall();
    if (this.ended) {
      this.maybeLogSummary();
      return;
    }
    this.flush();
  }

  private armStall() {
    this.lastProgress = this.deps.timers.now();
    if (this.stallTimer === undefined) this.stallTimer = this.deps.timers.setTimeout(() => this.checkStall(), this.deps.cfg.writeStallTimeoutMs);
  }

  private clearStall() {
    if (this.stallTimer !== undefined) this.deps.timers.clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  /** The stall timer fired: a stall if nothing completed since it was armed
   * or last refreshed; otherwise wait out the rest. */
  private checkStall() {
    this.stallTimer = undefined;
    if (this.ended || this.inflightBytes === 0) return;
    const idle = this.deps.timers.now() - this.lastProgress;
    const limit = this.deps.cfg.writeStallTimeoutMs;
    if (idle >= limit) {
      this.guard('write stall', () => this.cutOff('write_stall'));
      return;
    }
    this.stallTimer = this.deps.timers.setTimeout(() => this.checkStall(), limit - idle);
  }

  private schedulePump() {
    if (this.pumpScheduled || this.ended) return;
    if (![...this.subs.values()].some((s) => s.replayCursor !== null)) return;
    this.pumpScheduled = true;
    this.deps.timers.defer(() => {
      this.pumpScheduled = false;
      this.guard('replay', () => this.pump());
    });
  }

  /** Produces one slice of replay for the replaying subscriptions, while the
   * send window has room. */
  private pump() {
    if (this.ended) return;
    const w = this.deps.window;
    const max = this.deps.cfg.batchMaxEvents;
    let budget = REPLAY_SLICE_EVENTS;
    for (const sub of this.subs.values()) {
      while (sub.replayCursor !== null && budget > 0 && this.queuedBytes + this.inflightBytes < this.sendWindow) {
        const last = this.deps.lastSeq();
        const cursor = sub.replayCursor;
        if (cursor > last) {
          sub.replayCursor = null; // caught up: live from the next batch on
          break;
        }
        const oldest = w.oldestSeq ?? last + 1;
        if (cursor < oldest) {
          // The client fell behind the window: say so, and go on from the oldest held.
          this.push({ type: 'gap', sub, from: cursor, to: oldest - 1, dropped: null, reason: 'out_of_window', bytes: GAP_BYTES });
          sub.replayCursor = oldest;
          continue;
        }
        const ranges = w.read(cursor, budget, REPLAY_SLICE_BYTES);
        let read = 0;
        for (const r of ranges) read += r.end - r.start;
        budget -= read;
        sub.replayCursor = cursor + read;
        this.enqueue(sub, encodeChunks(ranges, sub.filter, sub.minSeq, max, sub.encoding, this.deps.kinds, this.frameBytes));
      }
    }
    this.settle();
    if (budget <= 0) this.schedulePump(); // more to do: on a later turn
  }

  private enqueue(sub: Subscription, chunks: readonly Chunk[]) {
    const binary = this.encoding === 'binary';
    for (const c of chunks) {
      const head = binary ? encodeEventsHeader(sub.id, c.count, WALL_MINUS_MONO_NS) : sub.jsonHead;
      const headBytes = typeof head === 'string' ? sub.jsonHeadBytes : head.length;
      sub.counts.matched += c.count;
      this.push({ type: 'events', sub, head, headBytes, chunk: c, bytes: headBytes + c.bytes });
    }
  }

  /**
   * A drained batch: queues its frames for every live subscription.
   * `encode` returns the batch's chunks for a filter (shared by every
   * session with that filter and encoding).
   */
  offer(batch: EventBatch, encode: (f: Filter, minSeq: number, encoding: Encoding) => readonly Chunk[]) {
    if (this.ended) return;
    this.guard('fan-out', () => {
      for (const sub of this.subs.values()) {
        if (sub.replayCursor !== null || sub.minSeq > batch.lastSeq) continue;
        this.enqueue(sub, encode(sub.filter, sub.minSeq, sub.encoding));
      }
      this.settle();
    });
  }

  /** Edge role: seqs `[from, to]` will never arrive (the ingest could not
   * publish them). Each live subscription that could have matched them gets
   * a gap notice (`ingest_dropped`, `dropped` unknown) in its place in the
   * queue; replaying ones find them missing from the window
   * (`out_of_window`). */
  upstreamGap(from: number, to: number) {
    if (this.ended) return;
    this.guard('upstream gap', () => {
      for (const sub of this.subs.values()) {
        if (sub.replayCursor !== null || sub.minSeq > to) continue;
        this.push({ type: 'gap', sub, from: Math.max(from, sub.minSeq), to, dropped: null, reason: 'ingest_dropped', bytes: GAP_BYTES });
      }
      this.settle();
    });
  }

  /** Ends the session because the events' epoch changed (edge role): 1012,
   * so the client reconnects and resumes, meeting a `new_epoch` gap. */
  epochChanged() {
    if (this.ended) return;
    this.guard('epoch change', () => this.cutOff('new_epoch'));
  }

  /** A client frame. */
  onMessage(data: Buffer, isBinary: boolean) {
    if (this.ended) return;
    this.guard('client frame', () => {
      if (!this.rate.tryRemoveTokens(1)) {
        this.cutOff('rate_limited');
        return;
      }
      if (isBinary) return this.malformed(ErrorCode.unsupportedFrame, `Binary frames are not part of the client protocol (subprotocol ${this.encoding === 'binary' ? 'evbridge.v1.binary' : 'evbridge.v1.json'}).`);
      const r = decodeClientFrame(data.toString('utf8'));
      if (!r.ok) return this.malformed(r.code, r.message, r.id);
      this.badFrames = 0;
      const m = r.message;
      if (m.type === 'subscribe') return this.subscribe(m);
      if (m.type === 'refresh') return this.refresh(m.token);
      this.unsubscribe(m.id);
    });
  }

  /** A refusal of a valid message (an unknown id, a limit reached): an error reply. */
  private bad(code: ErrorCodeValue, message: string, id?: string) {
    this.send({ type: 'error', code, message, ...(id !== undefined ? { id } : {}) });
  }

  /** A message that is not one (not JSON, not a valid message, binary): an
   * error reply, and the tenth in a row closes the connection (4009). */
  private malformed(code: ErrorCodeValue, message: string, id?: string) {
    this.bad(code, message, id);
    if (++this.badFrames >= MAX_BAD_FRAMES) this.cutOff('protocol_abuse');
  }

  /**
   * Starts a subscription. With `from_seq`, events from the replay window
   * come first, then live ones, with no duplicate and no hole: replay reads
   * the window up to the newest drained event, and live delivery starts with
   * the next batch. A `from_seq` older than the window, or from another
   * epoch, gets a gap notice first.
   */
  private subscribe(m: SubscribeMessage) {
    const c = this.deps.cfg;
    if (this.subs.has(m.id)) return this.bad(ErrorCode.duplicateSubscription, `Subscription "${m.id}" already exists.`, m.id);
    if (this.subs.size >= c.maxSubscriptions) {
      return this.bad(ErrorCode.tooManySubscriptions, `At most ${c.maxSubscriptions} subscriptions per connection.`, m.id);
    }
    const beyond = exceeds(this.principal.rights, m);
    if (beyond) {
      this.deps.auth?.refused('forbidden_subscription');
      this.deps.log.info({ remote: this.remote, user: this.principal.sub, id: m.id, refused: beyond }, 'subscription refused by the token\'s rights');
      return this.bad(ErrorCode.forbidden, `Subscription "${m.id}" asks for ${beyond}.`, m.id);
    }
    const filter = filterOf(m, this.deps.kinds);
    if ('unknownKind' in filter) {
      const known = this.deps.kinds.list.map((k) => k.name).join(', ');
      return this.bad(ErrorCode.unknownKind, `The engine has no kind "${filter.unknownKind}"; its kinds: ${known}.`, m.id);
    }
    if (m.format !== undefined && this.encoding === 'binary') {
      return this.bad(ErrorCode.badMessage, `"format" applies to the JSON subprotocol (evbridge.v1.json); binary events are ring records.`, m.id);
    }
    const format = this.encoding === 'binary' ? 'binary' : (m.format ?? 'objects');
    const encoding: Encoding = format === 'binary' ? 'binary' : format === 'rows' ? 'json-rows' : 'json';
    const key = `${encoding}|${filter.key}`;
    if (!this.deps.filters.acquire(key)) {
      return this.bad(
        ErrorCode.tooManyFilters,
        `The daemon serves at most ${c.maxDistinctFilters} distinct filters; use one already in use, or fewer kinds, sources and subjects combinations.`,
        m.id,
      );
    }
    const w = this.deps.window;
    const live = this.deps.lastSeq() + 1;
    let from = m.from_seq ?? live;
    const gaps: Omit<GapOut, 'sub'>[] = [];
    if (m.from_seq !== undefined && m.epoch !== undefined && m.epoch !== this.deps.epoch) {
      gaps.push({ type: 'gap', from: m.from_seq, to: null, dropped: null, reason: 'new_epoch', oldEpoch: m.epoch, bytes: GAP_BYTES });
      from = w.oldestSeq ?? live;
    } else if (from < live) {
      const oldest = w.oldestSeq ?? live;
      if (from < oldest) {
        gaps.push({ type: 'gap', from, to: oldest - 1, dropped: null, reason: 'out_of_window', bytes: GAP_BYTES });
        from = oldest;
      }
    }
    const sub = new Subscription(m.id, filter, encoding, key, from);
    sub.asked = { kinds: m.kinds ?? null, sources: m.sources ?? null, subjects: m.subjects ?? null };
    sub.replayCursor = from < live ? from : null;
    this.subs.set(m.id, sub);
    this.send({
      type: 'subscribed',
      id: m.id,
      kinds: m.kinds ?? null,
      sources: m.sources ?? null,
      subjects: m.subjects ?? null,
      format,
      next_seq: Math.max(live, from),
      replayed: from < live ? live - from : 0,
    });
    for (const g of gaps) this.push({ ...g, sub });
    this.settle();
  }

  /**
   * A `refresh`: checks the new token (asynchronously); on success it
   * replaces the connection's, for the same `sub` only, re-arms the expiry
   * and ends the subscriptions the new rights no longer cover (an error
   * frame `forbidden` for each, then `unsubscribed`); then `refreshed`. On
   * failure: `refresh_refused`, and the current token stays until it expires.
   */
  private refresh(token: string) {
    const auth = this.deps.auth;
    if (!auth || this.principal.mode !== 'jwt') {
      return this.bad(ErrorCode.refreshRefused, 'This connection does not use JWT access tokens: there is nothing to refresh.');
    }
    if (this.refreshing) return this.bad(ErrorCode.refreshRefused, 'A refresh is already being checked; wait for its answer.');
    this.refreshing = true;
    auth.authenticate(token).then(
      (p) => {
        this.refreshing = false;
        if (!this.ended) this.guard('refresh', () => this.refreshed(p));
      },
      (err: unknown) => {
        this.refreshing = false;
        if (this.ended) return;
        this.guard('refresh', () => {
          const e = err instanceof AuthError ? err : new AuthError('malformed', 'token could not be checked');
          auth.refused(e.reason);
          this.deps.log.info({ remote: this.remote, user: this.principal.sub, reason: e.reason }, 'token refresh refused');
          this.bad(ErrorCode.refreshRefused, `Refresh refused: ${e.message}; the connection keeps its current token until it expires.`);
        });
      },
    );
  }

  private refreshed(p: Principal) {
    if (p.sub !== this.principal.sub) {
      this.deps.auth?.refused('refresh_subject_changed');
      this.deps.log.info({ remote: this.remote, user: this.principal.sub }, 'token refresh refused: another subject');
      return this.bad(ErrorCode.refreshRefused, 'Refresh refused: the new token names another subject (sub); open a new connection for it.');
    }
    this.principal = p;
    this.armExpiry();
    for (const sub of [...this.subs.values()]) {
      const a = sub.asked;
      const beyond = exceeds(p.rights, { kinds: a.kinds ?? undefined, sources: a.sources ?? undefined, subjects: a.subjects ?? undefined });
      if (!beyond) continue;
      this.deps.auth?.refused('forbidden_subscription');
      this.bad(ErrorCode.forbidden, `Subscription "${sub.id}" ends: the refreshed token does not allow ${beyond}.`, sub.id);
      this.unsubscribe(sub.id);
    }
    this.deps.log.info({ remote: this.remote, user: p.sub, exp: p.exp }, 'token refreshed');
    this.send({ type: 'refreshed', exp: p.exp, rights: p.rights });
  }

  private unsubscribe(id: string) {
    const sub = this.subs.get(id);
    if (!sub) return this.bad(ErrorCode.unknownSubscription, `No subscription "${id}".`, id);
    this.queue = this.queue.filter((o) => {
      if (o.type === 'control' || o.sub !== sub) return true;
      if (o.type === 'events') this.dropEvents(sub, 'unsubscribed', o.chunk.count);
      this.queuedBytes -= o.bytes;
      return false;
    });
    this.subs.delete(id);
    this.past.push({ id, counts: sub.counts });
    this.deps.filters.release(sub.key);
    this.send({ type: 'unsubscribed', id });
    this.settle();
  }

  /** Ends the session: its queued events are dropped with `reason`, its
   * filters released, the server told. Idempotent. */
  private finish(reason: DisconnectReason) {
    if (this.ended) return;
    this.ended = reason;
    this.clearStall();
    if (this.expiryTimer !== undefined) this.deps.timers.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    for (const o of this.queue) if (o.type === 'events') this.dropEvents(o.sub, reason, o.chunk.count);
    this.queue = [];
    this.queuedBytes = 0;
    for (const sub of this.subs.values()) this.deps.filters.release(sub.key);
    this.deps.onEnd(this, reason);
    this.maybeLogSummary();
  }

  /**
   * Cuts the client off: for `slow_consumer` and `write_stall`, a gap
   * notice per subscription for the events still queued; then the close code
   * of `reason`; the socket is destroyed if the peer does not complete the
   * close within CLOSE_GRACE_MS.
   */
  private cutOff(reason: Exclude<DisconnectReason, 'client' | 'shutdown' | 'heartbeat'>) {
    if (this.ended) return;
    const tell = reason === 'slow_consumer' || reason === 'write_stall';
    // What the client is told, in queue order per subscription: gaps it was
    // to be sent anyway, and one gap per run of queued events and shed
    // ranges (all of them are dropped now).
    const notices: string[] = [];
    if (tell) {
      const runs = new Map<Subscription, { from: number; to: number; dropped: number }>();
      const flushRun = (sub: Subscription) => {
        const r = runs.get(sub);
        if (r) notices.push(gapMessage({ type: 'gap', sub, ...r, reason: 'slow_consumer', bytes: GAP_BYTES }));
        runs.delete(sub);
      };
      for (const o of this.queue) {
        if (o.type === 'control') continue;
        if (o.type === 'gap' && o.reason !== 'slow_consumer') {
          flushRun(o.sub);
          notices.push(gapMessage(o));
          continue;
        }
        const [from, to, n] = o.type === 'events' ? [o.chunk.first, o.chunk.last, o.chunk.count] : [o.from, o.to as number, o.dropped ?? 0];
        const r = runs.get(o.sub);
        if (r) {
          r.to = to;
          r.dropped += n;
        } else runs.set(o.sub, { from, to, dropped: n });
      }
      for (const sub of [...runs.keys()]) flushRun(sub);
    }
    this.deps.log.warn(
      { remote: this.remote, reason, queuedBytes: this.queuedBytes, inflightBytes: this.inflightBytes },
      'disconnecting WebSocket client',
    );
    this.finish(reason);
    if (this.ws.readyState === OPEN) {
      for (const n of notices) this.ws.send(n, { binary: false });
      this.ws.close(CLOSE_CODES[reason], reason);
    }
    this.deps.timers.setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
  }

  /** The server's heartbeat found no pong since the last ping: the peer is gone. */
  heartbeatLost() {
    if (this.ended) return;
    this.deps.log.warn({ remote: this.remote, reason: 'heartbeat' }, 'disconnecting WebSocket client');
    this.finish('heartbeat');
    this.ws.terminate();
  }

  /** The socket closed (either side). */
  onSocketClose() {
    this.socketClosed = true;
    this.finish('client');
    this.maybeLogSummary();
  }

  /** Shutdown: hands everything queued to the socket, ignoring the send
   * window, then closes with 1001. */
  shutdown() {
    if (this.ended) return;
    if (this.ws.readyState === OPEN) {
      for (const o of this.queue) this.write(o);
      this.queue = [];
      this.queuedBytes = 0;
      this.ws.close(CloseCode.goingAway, 'server shutting down');
    }
    this.finish('shutdown');
  }

  /** Once the connection ended and its last write completed, logs what each
   * subscription matched, sent and dropped (once). */
  private maybeLogSummary() {
    if (this.summaryLogged || !this.ended || this.inflightBytes !== 0 || !(this.socketClosed || this.ws.readyState !== OPEN)) return;
    this.summaryLogged = true;
    const level = this.ended === 'client' || this.ended === 'shutdown' ? 'debug' : 'info';
    this.deps.log[level]({ remote: this.remote, reason: this.ended, subscriptions: this.counts() }, 'WebSocket session ended');
  }
}
