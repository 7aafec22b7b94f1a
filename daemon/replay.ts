/**
 * The replay window: the most recent events, bounded in count and in bytes,
 * so that a subscriber can resume from a sequence number. Drained batches
 * are held whole, in seq order; the oldest events leave first, and a batch
 * is let go once all of its events have left.
 *
 * Memory: at most `maxEvents` events and `maxBytes` of record bytes are held
 * in the window (each event is charged its ring record length, header and
 * padding included). The oldest batch may be only partly in the window; its
 * evicted records stay allocated until the rest leave, so the retained bytes
 * exceed `maxBytes` by at most one drained batch (`drain.batchMaxBytes`).
 */
import type { EventBatch } from './engine.js';

/** Events `[start, end)` (indexes) of one batch. */
export interface EventRange {
  readonly batch: EventBatch;
  readonly start: number;
  readonly end: number;
}

export class ReplayWindow {
  private readonly batches: EventBatch[] = [];
  /** Events of batches[0] already evicted. */
  private skip = 0;
  private size = 0;
  private bytes = 0;

  constructor(
    private readonly maxEvents: number,
    private readonly maxBytes: number,
  ) {}

  get length(): number {
    return this.size;
  }

  /** Sequence number of the oldest event held, or undefined when empty. */
  get oldestSeq(): number | undefined {
    const b = this.batches[0];
    return b ? b.firstSeq + this.skip : undefined;
  }

  push(batch: EventBatch) {
    if (this.maxEvents === 0 || batch.count === 0) return;
    this.batches.push(batch);
    this.size += batch.count;
    this.bytes += batch.offsets[batch.count] as number;
    this.evict();
  }

  /** Drops the oldest events until both bounds hold. */
  private evict() {
    while (this.size > this.maxEvents || this.bytes > this.maxBytes) {
      const b = this.batches[0] as EventBatch;
      const left = b.count - this.skip;
      // Whole batch at once when that still leaves the window at or past a bound.
      const overEvents = this.size - this.maxEvents;
      const batchBytes = (b.offsets[b.count] as number) - (b.offsets[this.skip] as number);
      if (overEvents >= left || this.bytes - batchBytes >= this.maxBytes) {
        this.batches.shift();
        this.skip = 0;
        this.size -= left;
        this.bytes -= batchBytes;
        continue;
      }
      // Part of it: as many records as either bound needs.
      let n = Math.max(0, overEvents);
      while (this.bytes - ((b.offsets[this.skip + n] as number) - (b.offsets[this.skip] as number)) > this.maxBytes) n++;
      this.bytes -= (b.offsets[this.skip + n] as number) - (b.offsets[this.skip] as number);
      this.size -= n;
      this.skip += n;
      if (this.skip === b.count) {
        this.batches.shift();
        this.skip = 0;
      }
    }
  }

  /** Events with seq >= fromSeq, oldest first, as ranges of the held batches. */
  since(fromSeq: number): EventRange[] {
    const out: EventRange[] = [];
    this.batches.forEach((batch, k) => {
      const lo = Math.max(k === 0 ? this.skip : 0, fromSeq - batch.firstSeq);
      if (lo < batch.count) out.push({ batch, start: lo, end: batch.count });
    });
    return out;
  }
}
