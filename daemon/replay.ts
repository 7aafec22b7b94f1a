/**
 * The replay window: the most recent events, bounded in count and in bytes,
 * so that a subscriber can resume from a sequence number. Events are held in
 * seq order in a circular array; the oldest leave first.
 *
 * Memory: `maxEvents` slots, and at most `maxBytes` of record bytes (each
 * event is charged its ring record length, header and padding included,
 * which is what its retained buffer costs).
 */
import type { BridgeEvent } from './engine.js';

export class ReplayWindow {
  private readonly slots: (BridgeEvent | undefined)[];
  private head = 0; // index of the oldest event
  private size = 0;
  private bytes = 0;

  constructor(
    private readonly maxEvents: number,
    private readonly maxBytes: number,
  ) {
    this.slots = new Array(Math.max(1, maxEvents));
  }

  get length(): number {
    return this.size;
  }

  /** Sequence number of the oldest event held, or undefined when empty. */
  get oldestSeq(): number | undefined {
    return this.size ? this.slots[this.head]?.seq : undefined;
  }

  push(events: readonly BridgeEvent[]) {
    if (this.maxEvents === 0) return;
    for (const e of events) {
      if (this.size === this.slots.length) this.evict();
      this.slots[(this.head + this.size) % this.slots.length] = e;
      this.size++;
      this.bytes += e.record.length;
      while (this.bytes > this.maxBytes && this.size > 0) this.evict();
    }
  }

  private evict() {
    const e = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.slots.length;
    this.size--;
    if (e) this.bytes -= e.record.length;
  }

  /** Events with seq >= fromSeq, oldest first. */
  since(fromSeq: number): BridgeEvent[] {
    const oldest = this.oldestSeq;
    if (oldest === undefined) return [];
    const skip = Math.max(0, fromSeq - oldest); // seqs are dense in the window
    const out: BridgeEvent[] = [];
    for (let i = skip; i < this.size; i++) out.push(this.slots[(this.head + i) % this.slots.length] as BridgeEvent);
    return out;
  }
}
