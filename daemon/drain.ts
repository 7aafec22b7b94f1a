/**
 * RingDrain: reads the bridge's ring in place and publishes what it reads as
 * a hot RxJS stream of EventBatch, one batch per FFI call.
 *
 * The loop: the doorbell (a threadsafe function, queued to the main thread)
 * schedules a drain turn unless one is running. A turn takes at most
 * `drain.batchesPerTurn` batches of at most `drain.batchMaxEvents` events and
 * `drain.batchMaxBytes` bytes, each one FFI call and one copy of the batch's
 * bytes out of the ring; then it yields to the event loop (setImmediate) so
 * HTTP and WebSocket I/O run between turns. A turn whose last batch came back
 * at least half full is followed at once; one that found some events but no
 * backlog waits `drain.coalesceMs` (a timer) so that events gather into larger
 * batches and fewer socket writes; when a drain finds nothing it arms the
 * doorbell in the same call and the loop stops: no polling while idle.
 *
 * Batches shrink as clients add distinct filters (`batchEventsFor`): every
 * drained event is encoded once per distinct filter, and the time one turn
 * keeps the event loop busy must not grow with what clients ask for.
 *
 * After each turn it writes the bridge's panic messages to the log, at most
 * `PANIC_LOG_PER_SECOND` a second; the others are counted (the bridge counts
 * every panic itself, logged or not).
 */
import type { Logger } from 'pino';
import { Observable, Subject } from 'rxjs';
import { EventBatch } from './batch.js';
import { monoNowNs } from './clock.js';
import type { Config } from './config.js';
import type { EngineHost } from './engine.js';
import { Errors } from './errors.js';
import type { Native } from './native.js';
import { NATIVE_LAYOUT } from '../protocol/layout.js';

/** Panic messages written to the log per second at most (a panic storm once
 * wrote 532 MB of log in a minute). */
export const PANIC_LOG_PER_SECOND = 10;
/** Panic messages kept for the status page (each at most 512 bytes, the bridge's bound). */
export const PANICS_KEPT = 20;

/** Distinct filters a full drain batch is sized for. Every drained batch is
 * encoded once per distinct (filter, encoding) in use, so with more of them
 * the batch shrinks in proportion, to keep one turn's encoding work (time
 * the event loop is busy) near that of this many filters at
 * `drain.batchMaxEvents`; with fewer, batches stay full. */
export const FILTERS_PER_FULL_BATCH = 2;
/** The smallest batch the drain shrinks to, events. */
export const MIN_BATCH_EVENTS = 64;

/** The events per drain call for `filters` distinct filters in use. */
export function batchEventsFor(cfgMax: number, filters: number): number {
  if (filters <= FILTERS_PER_FULL_BATCH) return cfgMax;
  return Math.max(Math.min(MIN_BATCH_EVENTS, cfgMax), Math.floor((cfgMax * FILTERS_PER_FULL_BATCH) / filters));
}

const DRAIN = NATIVE_LAYOUT.structs.evb_drain_t.fields;

export interface RingDrainHooks {
  /** Called with every drained batch and the time it was drained
   * (CLOCK_MONOTONIC ns); for the drain-age histogram. */
  onDrainAges?: (batch: EventBatch, nowNs: number) => void;
  /** Called with the number of panic messages not logged (rate limit). */
  onPanicLogSuppressed?: (n: number) => void;
  /** Distinct filters in use: the encodings each drained event costs (see FILTERS_PER_FULL_BATCH). */
  distinctFilters?: () => number;
}

export class RingDrain {
  private readonly subject = new Subject<EventBatch>();
  /** The hot stream every consumer subscribes to; completes on `finish`. */
  readonly batches$: Observable<EventBatch> = this.subject.asObservable();
  private draining = false;
  private lastBatchBytes = 0;
  private finished = false;
  /** The last PANICS_KEPT panic messages, for the status page. */
  private readonly recentPanics: { time: number; message: string }[] = [];
  private panicWindowStart = 0;
  private panicsLogged = 0;
  private panicsSuppressed = 0;

  constructor(
    private readonly host: EngineHost,
    private readonly native: Native,
    private readonly cfg: Config['drain'],
    private readonly log: Logger,
    private readonly hooks: RingDrainHooks = {},
  ) {}

  /** The doorbell: schedules a drain turn unless one is running. */
  readonly schedule = (): void => {
    if (this.draining || this.finished) return;
    this.draining = true;
    setImmediate(() => this.turn());
  };

  private turn() {
    const c = this.cfg;
    const maxEvents = batchEventsFor(c.batchMaxEvents, this.hooks.distinctFilters?.() ?? 0);
    let n = 0;
    let total = 0;
    for (let i = 0; i < c.batchesPerTurn && !this.finished; i++) {
      n = this.drainOnce(false, maxEvents);
      total += n;
      if (n === 0) break;
    }
    this.logPanics();
    if (this.finished) return;
    if (n * 2 >= maxEvents || this.lastBatchBytes * 2 >= c.batchMaxBytes) {
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
    if (this.drainOnce(true, maxEvents) > 0) {
      setImmediate(() => this.turn());
      return;
    }
    // Once more after arming: a panic's message is queued before its
    // discarded record is published, so a message queued after the
    // logPanics above but before the arm (its record skipped by the arming
    // drain, no doorbell) is read here; one queued later comes with a
    // doorbell. Without this the storm's last message could wait for the
    // next event (test/attacks.test.ts saw 19,999 of 20,000 accounted).
    this.logPanics();
    this.draining = false;
  }

  /** One FFI call: releases the previous batch, emits the next (at most `maxEvents`). */
  private drainOnce(arm: boolean, maxEvents = this.cfg.batchMaxEvents): number {
    const count = this.native.drain(this.host.bridge, this.cfg.batchMaxBytes, maxEvents, arm);
    if (count <= 0) {
      if (count < 0) this.log.error({ err: Errors.EVB_ERR_NATIVE_CALL('evb_drain', this.native.statusName(count)) }, 'drain failed');
      this.lastBatchBytes = 0;
      return 0;
    }
    const r = this.host.drainResult;
    const start = Number(r.readBigUInt64LE(DRAIN.offset[0]));
    this.lastBatchBytes = Number(r.readBigUInt64LE(DRAIN.len[0]));
    const firstSeq = Number(r.readBigUInt64LE(DRAIN.first_seq[0]));
    // One copy of the whole batch out of the ring; nothing per event.
    const batch = new EventBatch(Buffer.from(this.host.ring.subarray(start, start + this.lastBatchBytes)), count, firstSeq);
    this.hooks.onDrainAges?.(batch, monoNowNs());
    this.subject.next(batch);
    return count;
  }

  /** Writes pending panic messages to the log, within the rate limit. */
  private logPanics() {
    const now = Date.now();
    if (now - this.panicWindowStart >= 1000) {
      if (this.panicsSuppressed > 0) {
        this.log.error({ suppressed: this.panicsSuppressed }, `${this.panicsSuppressed} more native panic messages were not logged (rate limit)`);
      }
      this.panicWindowStart = now;
      this.panicsLogged = 0;
      this.panicsSuppressed = 0;
    }
    for (;;) {
      const msg = this.native.panicMessageNext();
      if (!msg) return;
      this.recentPanics.push({ time: now, message: msg });
      if (this.recentPanics.length > PANICS_KEPT) this.recentPanics.shift();
      if (this.panicsLogged < PANIC_LOG_PER_SECOND) {
        this.panicsLogged++;
        this.log.error({ panic: msg }, 'native callback panicked');
      } else {
        this.panicsSuppressed++;
        this.hooks.onPanicLogSuppressed?.(1);
      }
    }
  }

  /** The last panic messages, oldest first. */
  panics(): { time: number; message: string }[] {
    return [...this.recentPanics];
  }

  /**
   * Drains everything left (the engine is stopped and detached by then),
   * logs the last panics and completes the stream. Synchronous: the ring
   * holds at most `ring.capacityBytes`. Idempotent.
   */
  finish(): void {
    if (this.finished) return;
    while (this.drainOnce(false) > 0) {}
    this.logPanics();
    this.finished = true;
    this.subject.complete();
  }
}
