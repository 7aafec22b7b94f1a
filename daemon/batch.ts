/**
 * EventBatch: the batch format every consumer of the drain reads (the
 * fan-out, the replay window, the JetStream publisher). One batch is the
 * records of one drain call, kept as one copy of the ring bytes they came
 * in: fields are read by index, and nothing is allocated per event unless a
 * consumer asks for an object (`event(i)`).
 *
 * Record layout: `protocol/records.ts` (the ring's own, generated from the
 * bridge's ABI). Immutable once built; safe to retain. Threading: main
 * thread only, like everything in the daemon.
 */
import { wallMs } from './clock.js';
import { REC, RECORD_HEADER } from '../protocol/records.js';

/** One event, materialised from a batch (for tests and tools, not the hot path). */
export interface BridgeEvent {
  /** Global sequence number: dense, from 1, in ring order. */
  readonly seq: number;
  /** Kind number, as the engine declared it. */
  readonly kind: number;
  readonly source: number;
  readonly flags: number;
  /** Per-source sequence number (exact below 2^53). */
  readonly sourceSeq: number;
  /** Engine timestamp, CLOCK_MONOTONIC nanoseconds. */
  readonly tsNs: bigint;
  /** Wall-clock time, Unix ms (clock.ts `wallMs`). */
  readonly timeMs: number;
  /** Payload: a view into the batch's bytes. */
  readonly payload: Buffer;
  /** Subject, or undefined for none. */
  readonly subject: string | undefined;
  /** The whole record as the ring laid it out (seq filled in), a view. */
  readonly record: Buffer;
}

const TWO_32 = 2 ** 32;

export class EventBatch {
  /** `count + 1` byte offsets: record i is `bytes[offsets[i], offsets[i+1])`. */
  readonly offsets: Uint32Array;
  /** `bytes` for the field reads: a DataView's little-endian reads cost about
   * a third of `Buffer#readUInt32LE`'s (10 against 27 ns per u64 field in a
   * loop over a 256-record batch, node 20), and these run per event. */
  private readonly view: DataView;

  /**
   * @param bytes the batch's records, back to back (owned by the batch).
   * @param count records in `bytes` (at least 1).
   * @param firstSeq global seq of the first record; the rest follow densely.
   */
  constructor(
    readonly bytes: Buffer,
    readonly count: number,
    readonly firstSeq: number,
  ) {
    this.offsets = new Uint32Array(count + 1);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let off = 0;
    for (let i = 0; i < count; i++) {
      this.offsets[i] = off;
      off += this.view.getUint32(off + REC.recordLen, true);
    }
    this.offsets[count] = off;
  }

  /** Seq of the last record. */
  get lastSeq(): number {
    return this.firstSeq + this.count - 1;
  }
  /** Bytes of all records. */
  get byteLength(): number {
    return this.offsets[this.count] as number;
  }
  /** The u32 at byte `field` of record i. */
  private u32(i: number, field: number): number {
    return this.view.getUint32((this.offsets[i] as number) + field, true);
  }
  /** The u64 at byte `field` of record i, as a double (exact below 2^53). */
  private u64(i: number, field: number): number {
    const o = (this.offsets[i] as number) + field;
    return this.view.getUint32(o, true) + this.view.getUint32(o + 4, true) * TWO_32;
  }
  /** The u64 at byte `field` of record i, exact, as decimal digits. */
  private u64String(i: number, field: number): string {
    const o = (this.offsets[i] as number) + field;
    const hi = this.view.getUint32(o + 4, true);
    // Below 2^53 the double is exact and String() prints it exactly.
    return hi < 0x200000 ? String(this.view.getUint32(o, true) + hi * TWO_32) : this.bytes.readBigUInt64LE(o).toString();
  }
  /** Kind number of record i. */
  kindNo(i: number): number {
    return this.u32(i, REC.kind);
  }
  /** Engine source id of record i. */
  source(i: number): number {
    return this.u32(i, REC.source);
  }
  /** Source flags of record i. */
  flags(i: number): number {
    return this.u32(i, REC.flags);
  }
  /** Per-source sequence number of record i (exact below 2^53). */
  sourceSeq(i: number): number {
    return this.u64(i, REC.sourceSeq);
  }
  /** Engine timestamp of record i as a double, ns: exact below 2^53 ns
   * (104 days of uptime), within a few ns after that. For ages and minima. */
  tsApproxNs(i: number): number {
    return this.u64(i, REC.tsNs);
  }
  /** Exact engine timestamp of record i, ns, as decimal digits. */
  tsString(i: number): string {
    return this.u64String(i, REC.tsNs);
  }
  /** Per-source sequence number of record i, exact, as decimal digits. */
  sourceSeqString(i: number): string {
    return this.u64String(i, REC.sourceSeq);
  }
  /** Wall-clock Unix ms of record i (the protocol's `time`). */
  timeMs(i: number): number {
    return wallMs(this.tsApproxNs(i));
  }
  /** Byte offset in `bytes` where record i's payload starts. */
  payloadStart(i: number): number {
    return (this.offsets[i] as number) + RECORD_HEADER;
  }
  /** Payload length of record i, bytes. */
  payloadLength(i: number): number {
    return this.u32(i, REC.payloadLen);
  }
  /** Byte offset in `bytes` where record i's subject starts. */
  subjectStart(i: number): number {
    return this.payloadStart(i) + this.payloadLength(i);
  }
  /** Subject length of record i, bytes (0 for none). */
  subjectLength(i: number): number {
    return this.u32(i, REC.subjectLen);
  }
  /** Records [from, to) as one view into `bytes`. */
  records(from: number, to: number): Buffer {
    return this.bytes.subarray(this.offsets[from], this.offsets[to]);
  }
  /** Record i as an object (allocates; views into `bytes`). */
  event(i: number): BridgeEvent {
    const o = this.offsets[i] as number;
    const p = this.payloadStart(i);
    const s = this.subjectStart(i);
    const sl = this.subjectLength(i);
    return {
      seq: this.firstSeq + i,
      kind: this.kindNo(i),
      source: this.source(i),
      flags: this.flags(i),
      sourceSeq: this.sourceSeq(i),
      tsNs: this.bytes.readBigUInt64LE(o + REC.tsNs),
      timeMs: this.timeMs(i),
      payload: this.bytes.subarray(p, p + this.payloadLength(i)),
      subject: sl ? this.bytes.toString('utf8', s, s + sl) : undefined,
      record: this.bytes.subarray(o, this.offsets[i + 1]),
    };
  }
}
