/**
 * The replay window: the most recent events, bounded in count and in bytes,
 * so that a subscriber can resume from a sequence number.
 *
 * Records are copied, in the ring's own layout, into one byte buffer of
 * `maxBytes` used as a circular log (a record never wraps: when it does not
 * fit before the end, writing restarts at offset 0), with a circular index
 * of `maxEvents` record offsets. The oldest events leave first, when the
 * count bound is reached or when the bytes they occupy are needed.
 *
 * Why copy rather than keep the drained batches: retained batches are
 * thousands of small objects a second that survive long enough to be
 * promoted, and the old-space collections they cause were the largest
 * latency tail measured (bench/RESULTS.md: 10 clients at 100 k events/s,
 * p99 44 ms with batches retained, 2.6 ms with the window off). A flat
 * buffer costs one memcpy per batch and gives the collector nothing to do.
 *
 * Readers take bounded slices (`read`): a resume is served a slice at a time
 * as the client's socket takes it, never the whole window at once.
 *
 * Memory: `maxBytes` for the log (allocated at construction, uninitialised,
 * so pages are touched as the log fills) plus 8 bytes × `maxEvents`. Held
 * events occupy at most `maxBytes`; a wrap wastes less than one record at
 * the end of the log. A record larger than `maxBytes` empties the window.
 * Threading: main thread only.
 */
import { EventBatch } from './batch.js';

/** Events `[start, end)` (indexes) of one batch. */
export interface EventRange {
  readonly batch: EventBatch;
  readonly start: number;
  readonly end: number;
}

export class ReplayWindow {
  private readonly log: Buffer;
  /** Byte offset in `log` of each held record, circular, oldest at `head`. */
  private readonly offsets: Uint32Array;
  /** Byte length of each held record, indexed like `offsets` (so that
   * eviction never reads the log, which `push` writes in runs). */
  private readonly lengths: Uint32Array;
  private head = 0;
  private size = 0;
  /** Seq of the oldest held event (valid when size > 0). */
  private firstSeq = 0;
  /** Where the next record goes. */
  private write = 0;
  private bytes = 0;

  /**
   * @param maxEvents events held at most (0 turns the window off).
   * @param maxBytes bytes of records held at most (0 turns the window off).
   */
  constructor(maxEvents: number, maxBytes: number) {
    const on = maxEvents > 0 && maxBytes > 0;
    this.log = Buffer.allocUnsafeSlow(on ? maxBytes : 0);
    this.offsets = new Uint32Array(on ? maxEvents : 0);
    this.lengths = new Uint32Array(on ? maxEvents : 0);
  }

  /** Events held. */
  get length(): number {
    return this.size;
  }

  /** Bytes of the records held. */
  get heldBytes(): number {
    return this.bytes;
  }

  /** Sequence number of the oldest event held, or undefined when empty. */
  get oldestSeq(): number | undefined {
    return this.size ? this.firstSeq : undefined;
  }

  private offsetOf(k: number): number {
    return this.offsets[(this.head + k) % this.offsets.length] as number;
  }

  private lengthOf(k: number): number {
    return this.lengths[(this.head + k) % this.lengths.length] as number;
  }

  private evictOldest() {
    this.bytes -= this.lengthOf(0);
    this.head = (this.head + 1) % this.offsets.length;
    this.size--;
    this.firstSeq++;
  }

  /** Forgets every held event (a gap in the seqs, or a new epoch): the
   * window must stay one dense run of seqs. */
  clear() {
    this.size = this.bytes = this.write = this.head = 0;
  }

  /** Appends a drained batch (its seqs follow the held ones). */
  push(batch: EventBatch) {
    if (this.offsets.length === 0) return;
    const cap = this.log.length;
    // Records are copied in runs: batch records [runFrom, i) go to the log
    // at runAt, contiguous on both sides, with one copy call per run.
    let runFrom = 0;
    let runAt = this.write;
    const flush = (to: number) => {
      batch.bytes.copy(this.log, runAt, batch.offsets[runFrom] as number, batch.offsets[to] as number);
    };
    for (let i = 0; i < batch.count; i++) {
      const from = batch.offsets[i] as number;
      const len = (batch.offsets[i + 1] as number) - from;
      if (len > cap) {
        // Cannot be held: empty the window so that it stays a dense run of seqs.
        flush(i);
        this.size = this.bytes = this.write = 0;
        runFrom = i + 1;
        runAt = 0;
        continue;
      }
      if (this.size === this.offsets.length) this.evictOldest();
      if (this.write + len > cap) {
        // Wrap. Records from `write` to the end are older than every record
        // before `write`, so they leave first.
        while (this.size > 0 && this.offsetOf(0) >= this.write) this.evictOldest();
        flush(i);
        this.write = 0;
        runFrom = i;
        runAt = 0;
      }
      // Make room: the oldest records are the ones just ahead of `write`.
      while (this.size > 0) {
        const o = this.offsetOf(0);
        if (o >= this.write + len || o + this.lengthOf(0) <= this.write) break;
        this.evictOldest();
      }
      if (this.size === 0) this.firstSeq = batch.firstSeq + i;
      const slot = (this.head + this.size) % this.offsets.length;
      this.offsets[slot] = this.write;
      this.lengths[slot] = len;
      this.size++;
      this.bytes += len;
      this.write += len;
    }
    flush(batch.count);
  }

  /**
   * A slice of the held events with seq >= fromSeq, oldest first: at most
   * `maxEvents` events and about `maxBytes` bytes (at least one event), as
   * copies (at most two batches: the log may wrap once within a slice).
   * Empty when nothing is held from `fromSeq` on.
   */
  read(fromSeq: number, maxEvents: number, maxBytes: number): EventRange[] {
    const skip = Math.max(0, fromSeq - this.firstSeq);
    if (skip >= this.size) return [];
    const stop = Math.min(this.size, skip + Math.max(1, maxEvents));
    const out: EventRange[] = [];
    let k = skip;
    let taken = 0;
    while (k < stop && (taken === 0 || taken < maxBytes)) {
      // A run of records that are contiguous in the log.
      const start = this.offsetOf(k);
      let end = start + this.lengthOf(k);
      let n = 1;
      while (k + n < stop && this.offsetOf(k + n) === end && taken + (end - start) < maxBytes) {
        end += this.lengthOf(k + n);
        n++;
      }
      const batch = new EventBatch(Buffer.from(this.log.subarray(start, end)), n, this.firstSeq + k);
      out.push({ batch, start: 0, end: n });
      taken += end - start;
      k += n;
    }
    return out;
  }
}
