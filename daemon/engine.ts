/**
 * EngineHost: owns the native engine and bridge, registers the Rust callback
 * with the engine, drains the ring in place when the doorbell rings, and
 * publishes what it drains as a hot RxJS stream of batches.
 *
 * Drain loop: the doorbell (a threadsafe function, queued to the main thread)
 * schedules a drain turn unless one is running. A turn takes at most
 * `drain.batchesPerTurn` batches of at most `drain.batchMaxEvents` events,
 * each one FFI call, copying each payload out of the ring before the next
 * call releases it; then it yields to the event loop (setImmediate) so HTTP
 * and WebSocket I/O run between turns. A turn whose last batch came back at
 * least half full is followed at once (setImmediate); one that found some
 * events but no backlog waits `drain.coalesceMs` (a timer) so that events
 * gather into larger batches and fewer socket writes; when a drain finds
 * nothing it arms the doorbell in the same call and the loop stops: no
 * polling while idle.
 */
import type { Logger } from 'pino';
import { Observable, Subject, mergeMap } from 'rxjs';
import type { JsExternal } from 'ffi-rs';
import type { Config } from './config.js';
import { type NativeStats, STATS_BYTES, decodeStats } from './metrics.js';
import { type FaultName, Kind, type Native } from './native.js';
import { KIND_BY_NUMBER, type KindName } from '../protocol/messages.js';

/** One event, copied out of the ring (materialised on demand by `EventBatch.event`). */
export interface BridgeEvent {
  /** Global sequence number: dense, from 1, in ring order. */
  readonly seq: number;
  readonly kind: KindName;
  readonly source: number;
  /** Per-source sequence number (exact below 2^53). */
  readonly sourceSeq: number;
  /** Engine timestamp, CLOCK_MONOTONIC nanoseconds. */
  readonly tsNs: bigint;
  /** Wall-clock time of the event, Unix ms, derived from tsNs at drain time. */
  readonly timeMs: number;
  /** Payload: a view into the batch's copy of the ring bytes (never the ring). */
  readonly payload: Buffer;
  /** The whole record as the ring laid it out (48-byte header, payload,
   * padding to 64; seq filled in), a view into the same copy. This is the
   * binary protocol's event encoding. */
  readonly record: Buffer;
}

const TWO_32 = 2 ** 32;
/** Bytes of a ring record's header. */
const HEADER = 48;

/**
 * The events drained by one FFI call, in seq order, kept as the one copy of
 * the ring bytes they came in: no per-event object is made unless a consumer
 * asks for one (`event(i)`, `events()`). Fan-out reads fields by index and
 * ships record bytes as views, which is what lets one drain turn carry
 * millions of events per second (bench/RESULTS.md).
 *
 * Record layout (PROTOCOL.md, "Binary encoding"): u32 record length, u32
 * payload length, u32 kind, u32 source, u32 flags, 4 bytes reserved, u64
 * source_seq, u64 ts_ns (CLOCK_MONOTONIC), u64 seq, then the payload, padded
 * to 64 bytes. Immutable once built; safe to retain (the replay window does).
 */
export class EventBatch {
  /** `count + 1` byte offsets: record i is `bytes[offsets[i], offsets[i+1])`. */
  readonly offsets: Uint32Array;

  /**
   * @param bytes the batch's records, copied out of the ring (owned by the batch).
   * @param count records in `bytes` (at least 1).
   * @param firstSeq global seq of the first record; the rest follow densely.
   * @param monoNowNs CLOCK_MONOTONIC ns at drain time (for `timeMs`).
   * @param wallNowMs Unix ms at drain time (for `timeMs`).
   */
  constructor(
    readonly bytes: Buffer,
    readonly count: number,
    readonly firstSeq: number,
    readonly monoNowNs: number,
    readonly wallNowMs: number,
  ) {
    this.offsets = new Uint32Array(count + 1);
    let off = 0;
    for (let i = 0; i < count; i++) {
      this.offsets[i] = off;
      off += bytes.readUInt32LE(off);
    }
    this.offsets[count] = off;
  }

  /** Seq of the last record. */
  get lastSeq(): number {
    return this.firstSeq + this.count - 1;
  }
  /** The u64 at byte `field` of record i, as a double (exact below 2^53). */
  private u64(i: number, field: number): number {
    const o = (this.offsets[i] as number) + field;
    return this.bytes.readUInt32LE(o) + this.bytes.readUInt32LE(o + 4) * TWO_32;
  }
  /** Numeric kind of record i (KIND_NUMBER). */
  kindNo(i: number): number {
    return this.bytes.readUInt32LE((this.offsets[i] as number) + 8);
  }
  /** Engine source id of record i. */
  source(i: number): number {
    return this.bytes.readUInt32LE((this.offsets[i] as number) + 12);
  }
  /** Per-source sequence number of record i (exact below 2^53). */
  sourceSeq(i: number): number {
    return this.u64(i, 24);
  }
  /** Engine timestamp of record i as a double, ns: exact below 2^53 ns
   * (104 days of uptime), within a few ns after that. For ages and minima. */
  tsApproxNs(i: number): number {
    return this.u64(i, 32);
  }
  /** Exact engine timestamp of record i, ns, as decimal digits. */
  tsString(i: number): string {
    const o = (this.offsets[i] as number) + 32;
    const hi = this.bytes.readUInt32LE(o + 4);
    // Below 2^53 the double is exact and String() prints it exactly.
    return hi < 0x200000 ? String(this.bytes.readUInt32LE(o) + hi * TWO_32) : this.bytes.readBigUInt64LE(o).toString();
  }
  /** Wall-clock Unix ms of record i, from its age at drain time. */
  timeMs(i: number): number {
    return this.wallNowMs - (this.monoNowNs - this.tsApproxNs(i)) / 1e6;
  }
  /** Byte offset in `bytes` where record i's payload starts. */
  payloadStart(i: number): number {
    return (this.offsets[i] as number) + HEADER;
  }
  /** Payload length of record i, bytes. */
  payloadLength(i: number): number {
    return this.bytes.readUInt32LE((this.offsets[i] as number) + 4);
  }
  /** Records [from, to) as one view into `bytes`. */
  records(from: number, to: number): Buffer {
    return this.bytes.subarray(this.offsets[from], this.offsets[to]);
  }
  /** Record i as a BridgeEvent (allocates; views into `bytes`). */
  event(i: number): BridgeEvent {
    const o = this.offsets[i] as number;
    const b = this.bytes;
    return {
      seq: this.firstSeq + i,
      kind: KIND_BY_NUMBER.get(b.readUInt32LE(o + 8)) ?? 'gen',
      source: b.readUInt32LE(o + 12),
      sourceSeq: this.sourceSeq(i),
      tsNs: b.readBigUInt64LE(o + 32),
      timeMs: this.timeMs(i),
      payload: b.subarray(o + HEADER, o + HEADER + b.readUInt32LE(o + 4)),
      record: b.subarray(o, this.offsets[i + 1]),
    };
  }
  private all: BridgeEvent[] | undefined;
  /** Every record as a BridgeEvent, made once and cached. */
  events(): readonly BridgeEvent[] {
    if (!this.all) {
      this.all = new Array(this.count);
      for (let i = 0; i < this.count; i++) this.all[i] = this.event(i);
    }
    return this.all;
  }
}

/** Thrown when the engine cannot start; `message` is meant for operators. */
export class EngineStartError extends Error {
  readonly code = 'EVB_ERR_ENGINE_START';
}

const ALL_KINDS = (1 << Kind.udp) | (1 << Kind.tick) | (1 << Kind.gen);

export interface EngineHostOptions {
  /** Called with the age (s) of every drained event; for the drain-age histogram. */
  onDrainAge?: (seconds: number) => void;
}

export class EngineHost {
  private readonly subject = new Subject<EventBatch>();
  /** The hot stream every consumer subscribes to; completes on close. */
  readonly batches$: Observable<EventBatch> = this.subject.asObservable();
  /** The same stream, one event at a time. */
  readonly events$: Observable<BridgeEvent> = this.batches$.pipe(mergeMap((b) => b.events()));

  private readonly eng: JsExternal;
  private readonly bridge: JsExternal;
  private readonly token: JsExternal;
  private readonly ring: Buffer;
  private readonly result: Buffer;
  private readonly statsBuf: Buffer;
  private registration = 0;
  private releaseDoorbell: () => void = () => {};
  private draining = false;
  private lastBatchBytes = 0;
  private closed = false;
  private started = false;
  /** Bound UDP port, when a UDP source exists. */
  udpPort: number | undefined;
  /** Source ids by source kind, for the start-up log. */
  readonly sources: { kind: string; id: number; detail: string }[] = [];
  readonly delayBoundsNs: number[] = [];

  constructor(
    private readonly cfg: Config,
    private readonly native: Native,
    private readonly log: Logger,
    private readonly opts: EngineHostOptions = {},
  ) {
    const { engine, bridge } = native;
    this.eng = engine.create();
    if (native.isNull(this.eng)) throw new EngineStartError('ee_engine_new failed (out of memory)');
    this.bridge = bridge.create(cfg.ring.capacityBytes, cfg.ring.maxPayloadBytes, Math.round(cfg.ring.lateThresholdMs * 1e6), ALL_KINDS);
    if (native.isNull(this.bridge)) {
      const st = bridge.lastStatus();
      engine.free(this.eng);
      throw new EngineStartError(
        `evb_bridge_new refused ring.capacityBytes=${cfg.ring.capacityBytes}, ring.maxPayloadBytes=${cfg.ring.maxPayloadBytes}: ` +
          `${bridge.statusName(st)} (the ring must hold at least two records of the largest payload)`,
      );
    }
    this.ring = native.wrap(bridge.ringData(this.bridge), bridge.ringCapacity(this.bridge));
    this.result = native.wrap(bridge.drainResult(this.bridge), 32);
    this.statsBuf = native.wrap(bridge.stats(this.bridge), STATS_BYTES);
    for (let i = 0; i < 14; i++) this.delayBoundsNs.push(bridge.delayBoundNs(i));
    this.delayBoundsNs.pop(); // the last bucket is +Inf
    this.token = bridge.tokenNew(this.bridge);
  }

  /** Adds the configured sources, registers the callback and starts the engine. */
  start(): void {
    const { engine, bridge } = this.native;
    const c = this.cfg;
    const check = (rc: number, what: string) => {
      if (rc < 0) throw new EngineStartError(`${what}: ${engine.strerror(rc)} (${engine.errName(rc)})`);
      return rc;
    };
    if (c.udp.enabled) {
      const id = check(engine.addUdp(this.eng, c.udp.host, c.udp.port), `Cannot listen for UDP on ${c.udp.host}:${c.udp.port}`);
      this.udpPort = engine.udpPort(this.eng, id);
      this.sources.push({ kind: 'udp', id, detail: `${c.udp.host}:${this.udpPort}` });
    }
    if (c.tick.hz > 0) {
      const id = check(engine.addTick(this.eng, c.tick.hz), 'Cannot add the tick source');
      this.sources.push({ kind: 'tick', id, detail: `${c.tick.hz} Hz` });
    }
    if (c.generator.threads > 0) {
      const g = c.generator;
      const id = check(engine.addGenerator(this.eng, g.threads, g.rate, g.payloadBytes, g.count), 'Cannot add the generator');
      this.sources.push({ kind: 'gen', id, detail: `${g.threads} threads, ${g.rate || 'max'} ev/s each, ${g.payloadBytes} B, count ${g.count || 'unbounded'}` });
    }
    if (c.faultInjection) {
      engine.setFaultInjection(this.eng, true);
      // A retired registration, so that stale calls can be injected: the
      // engine keeps its callback and (revoked) token after unregistering.
      const retired = bridge.tokenNew(this.bridge);
      const rid = engine.register(this.eng, bridge.callback(), retired, ALL_KINDS);
      engine.unregister(this.eng, rid);
      bridge.tokenRevoke(retired);
    }
    this.releaseDoorbell = bridge.setDoorbell(this.bridge, () => this.schedule());
    this.registration = check(engine.register(this.eng, bridge.callback(), this.token, ALL_KINDS), 'Cannot register the bridge callback');
    check(engine.start(this.eng), 'Cannot start the engine');
    this.started = true;
    this.schedule();
  }

  /** True once the engine runs and the drain loop is wired. */
  get ready(): boolean {
    return this.started && !this.closed;
  }

  /** Reads the bridge's counters (one FFI call); after `close`, the final ones. */
  stats(): NativeStats {
    if (this.finalStats) return this.finalStats; // the bridge is freed: never touch it
    this.native.bridge.stats(this.bridge);
    return decodeStats(this.statsBuf);
  }

  /** Fault injection through the real engine; returns calls made or a negative code
   * (-1 once closed). */
  inject(fault: FaultName, count: number): number {
    return this.closed ? -1 : this.native.engine.inject(this.eng, fault, count);
  }

  /** Makes the next `n` accepted events panic inside the Rust callback; -1 once closed. */
  injectPanic(n: number): number {
    return this.closed ? -1 : this.native.bridge.faultPanic(this.bridge, n);
  }

  private schedule() {
    if (this.draining || this.closed) return;
    this.draining = true;
    setImmediate(() => this.turn());
  }

  private turn() {
    const c = this.cfg.drain;
    let n = 0;
    let total = 0;
    for (let i = 0; i < c.batchesPerTurn && !this.closed; i++) {
      n = this.drainOnce(false);
      total += n;
      if (n === 0) break;
    }
    this.logPanics();
    if (this.closed) return;
    if (n * 2 >= c.batchMaxEvents || this.lastBatchBytes * 2 >= c.batchMaxBytes) {
      setImmediate(() => this.turn()); // a backlog: yield to I/O, then go on
      return;
    }
    if (total > 0 && c.coalesceMs > 0) {
      // Events are flowing but not filling batches: let them gather for
      // coalesceMs, so each turn (and each socket write) carries many. The
      // first event after idle still goes out at once (the doorbell).
      setTimeout(() => this.turn(), c.coalesceMs);
      return;
    }
    // Nothing left: arm the doorbell in the same call that checks once more.
    if (this.drainOnce(true) > 0) {
      setImmediate(() => this.turn());
      return;
    }
    this.draining = false;
  }

  /** One FFI call: releases the previous batch, emits the next. */
  private drainOnce(arm: boolean): number {
    const { batchMaxBytes, batchMaxEvents } = this.cfg.drain;
    const count = this.native.bridge.drain(this.bridge, batchMaxBytes, batchMaxEvents, arm);
    if (count <= 0) {
      this.lastBatchBytes = 0;
      return 0;
    }
    const r = this.result;
    const start = Number(r.readBigUInt64LE(0));
    this.lastBatchBytes = Number(r.readBigUInt64LE(8));
    const firstSeq = Number(r.readBigUInt64LE(24));
    // One copy of the whole batch out of the ring; nothing per event.
    const bytes = Buffer.from(this.ring.subarray(start, start + this.lastBatchBytes));
    const [s, ns] = process.hrtime();
    const batch = new EventBatch(bytes, count, firstSeq, s * 1e9 + ns, Date.now());
    const onAge = this.opts.onDrainAge;
    if (onAge) for (let i = 0; i < count; i++) onAge((batch.monoNowNs - batch.tsApproxNs(i)) / 1e9);
    this.subject.next(batch);
    return count;
  }

  private logPanics() {
    for (;;) {
      const msg = this.native.bridge.panicMessageNext();
      if (!msg) return;
      this.log.error({ panic: msg }, 'native callback panicked');
    }
  }

  /**
   * Shuts down in the order the native side requires: stop the sources,
   * unregister the callback (waits for in-flight calls), drain what is left,
   * revoke the token, free the bridge, release the doorbell, free the
   * engine; then completes the stream. Idempotent. Returns the final counters.
   */
  close(): NativeStats {
    const { engine, bridge } = this.native;
    if (this.closed && this.finalStats) return this.finalStats;
    engine.stop(this.eng);
    if (this.registration > 0) engine.unregister(this.eng, this.registration);
    // Everything still in the ring reaches the stream before it completes;
    // the last call, which finds nothing, also releases the last batch.
    while (this.drainOnce(false) > 0) {}
    this.logPanics();
    this.finalStats = this.stats();
    this.closed = true; // from here on stats() returns finalStats
    bridge.tokenRevoke(this.token);
    bridge.free(this.bridge);
    this.releaseDoorbell();
    engine.free(this.eng);
    this.subject.complete();
    return this.finalStats;
  }
  private finalStats: NativeStats | undefined;
}
