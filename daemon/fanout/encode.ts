/**
 * Encoding events for the wire: the events of one batch that match one
 * filter, cut into chunks of at most `ws.batchMaxEvents`, each the body of one
 * `events` message, in JSON text or as ring records (binary). A chunk is
 * shared by every subscription with that filter and encoding; the
 * per-subscription head (its id) is a separate fragment (session.ts).
 */
import type { EventBatch } from '../batch.js';
import { NATIVE_LAYOUT } from '../../protocol/layout.js';
import type { KindTable } from '../engine.js';
import type { EventRange } from '../replay.js';
import { type Filter, matches, matchesAll } from './filter.js';

/** The most bytes one event's JSON takes besides its base64 payload and its
 * subject (the bridge's `EVB_JSON_EVENT_FIXED_MAX`). */
const JSON_EVENT_FIXED_MAX = NATIVE_LAYOUT.json_event_fixed_max;

/** An upper bound of a JSON chunk's text: per event the fixed maximum and 3
 * for base64 padding, plus 4/3 of its records' bytes; about 1.9 times the
 * text for 64-byte payloads, 1.4 times for 1,000-byte ones. */
export function jsonBound(count: number, span: number): number {
  return count * (JSON_EVENT_FIXED_MAX + 3) + Math.ceil((span * 4) / 3) + 3;
}

/** Text over bound of the chunks written lately, per JSON encoding: an
 * exponentially weighted mean (weight 1/8 for the newest), from 1 (the
 * bound itself) until a chunk was written. A chunk not written yet is
 * counted in queues as its bound times this: near its size, where the bound
 * alone would count a queue of 64-byte events at about twice its size and
 * shed a slow consumer's events at half the watermark. */
const textPerBound = { json: 1, 'json-rows': 1 };

/** How a chunk's events are written: JSON objects, JSON rows (arrays of
 * the same fields in a fixed order; a subscription's `format`), or ring
 * records (the binary subprotocol). */
export type Encoding = 'json' | 'json-rows' | 'binary';

/** Events of one batch that match one filter: the UTF-8 text of the JSON
 * events array and the message's closing brace, or the concatenated ring
 * records (binary).
 *
 * A chunk is made when its batch is fanned out, but its body is written
 * only when a session first reads it (at the socket write): a chunk every
 * session shed as a slow consumer is never encoded. Its `bytes` is known
 * at once (estimated for JSON until the text exists), so queues count it
 * before the body exists. Counting a JSON chunk's exact size without writing
 * it cost 75 to 100 ns per event (node 20), most of what writing costs. */
export interface Chunk {
  /** The body (encoded on the first read, then kept). */
  readonly body: Buffer;
  /** The body's length in bytes: exact for binary, and for JSON once the
   * body was written; before that, for JSON, an estimate: its upper bound
   * times the text-to-bound ratio of the chunks written lately
   * (`textPerBound`). */
  readonly bytes: number;
  /** Seqs of the first and last event. */
  readonly first: number;
  readonly last: number;
  readonly count: number;
  /** Engine timestamp of the oldest event, ns (EventBatch.tsApproxNs). */
  readonly oldestTsNs: number;
  /** Bytes of memory the chunk keeps alive: while it holds its batch (its
   * body is not written yet, or is a view into the batch, as binary bodies
   * are), the batch's records; after that, its body. See `SPARSE_SHARE`. */
  readonly retainedBytes: number;
}

/** A filter's events that come to less than this share of a batch's
 * records' bytes make chunks that are written at once and let go of the
 * batch (a copy, for binary). Otherwise a slow consumer's queue, counted by
 * its chunks' bytes, could keep alive whole batches for a few events each:
 * one event of 112 bytes kept a 1 MiB batch. With this, what a queue keeps
 * alive is at most twice what it counts, plus the batches at its two ends.
 * Dense chunks stay lazy: a chunk every session sheds is never written. */
export const SPARSE_SHARE = 0.5;

/**
 * Writes the JSON events array of a chunk (records `from..to` of `b`, or
 * the `picked` indexes), `[...]}`, as a chunk does with `eventJson` (or
 * `eventRow` when `rows`); or returns null to leave it to those. The
 * bridge's writer (json-native.ts) is one.
 */
export type JsonWriter = (b: EventBatch, from: number, to: number, picked: readonly number[] | null, kinds: KindTable, rows: boolean) => Buffer | null;

let jsonWriter: JsonWriter | null = null;

/** Makes `w` write every JSON chunk from now on (null: `eventJson`). The
 * ingest sets the bridge's writer at start when `ws.jsonEncoder` is
 * `native`; main thread only. */
export function useJsonWriter(w: JsonWriter | null): void {
  jsonWriter = w;
}

/**
 * One event as protocol v1 JSON, straight from the batch's bytes. The output
 * is exactly `JSON.stringify` of `{seq, kind, source, source_seq, ts, time,
 * payload[, subject]}` (test/batch.test.ts checks it; a source_seq of 2^53
 * or more is written exactly, where `JSON.stringify` would write the nearest
 * double, which parses to the same number): every field is an
 * integer, a kind name (`[a-z0-9_]`), decimal digits, base64 or a subject
 * (which the bridge's rule keeps free of every character JSON escapes), so
 * the object and its reflection are skipped on this per-event path.
 */
export function eventJson(b: EventBatch, i: number, kinds: KindTable): string {
  const p = b.payloadStart(i);
  const pl = b.payloadLength(i);
  const sl = b.subjectLength(i);
  return (
    `{"seq":${b.firstSeq + i},"kind":"${kinds.name(b.kindNo(i))}","source":${b.source(i)},` +
    `"source_seq":${b.sourceSeqString(i)},"ts":"${b.tsString(i)}","time":${b.timeMs(i)},` +
    `"payload":"${b.bytes.toString('base64', p, p + pl)}"` +
    (sl ? `,"subject":"${b.bytes.toString('utf8', p + pl, p + pl + sl)}"}` : '}')
  );
}

/**
 * One event as a protocol v1 JSON row (a subscription with `"format":
 * "rows"`): `[seq, kind, source, source_seq, ts, time, payload]`, then the
 * subject when it has one; the values are those `eventJson` writes, in its
 * order, without the names.
 */
export function eventRow(b: EventBatch, i: number, kinds: KindTable): string {
  const p = b.payloadStart(i);
  const pl = b.payloadLength(i);
  const sl = b.subjectLength(i);
  return (
    `[${b.firstSeq + i},"${kinds.name(b.kindNo(i))}",${b.source(i)},${b.sourceSeqString(i)},` +
    `"${b.tsString(i)}",${b.timeMs(i)},"${b.bytes.toString('base64', p, p + pl)}"` +
    (sl ? `,"${b.bytes.toString('utf8', p + pl, p + pl + sl)}"]` : ']')
  );
}

/** The events `[from, to)` of one batch, or just the `picked` indexes, as
 * one chunk; `span` is their records' bytes. The body is written on first
 * read, with the JSON writer set when the chunk was made. */
class BatchChunk implements Chunk {
  readonly first: number;
  readonly last: number;
  readonly count: number;
  private encoded: Buffer | null = null;
  private oldest = Number.NaN;
  /** Binary: the body's exact size; JSON: an upper bound of it. */
  private readonly bound: number;
  private readonly writer: JsonWriter | null;
  /** The batch, until the chunk lets go of it (`write`). */
  private b: EventBatch | null;
  private picked: number[] | null;

  constructor(
    b: EventBatch,
    private readonly from: number,
    private readonly to: number,
    picked: number[] | null,
    private readonly encoding: Encoding,
    private readonly kinds: KindTable,
    span: number,
  ) {
    this.b = b;
    this.picked = picked;
    this.count = picked ? picked.length : to - from;
    this.first = b.firstSeq + this.at(0);
    this.last = b.firstSeq + this.at(this.count - 1);
    this.writer = encoding === 'binary' ? null : jsonWriter;
    this.bound = encoding === 'binary' ? span : jsonBound(this.count, span);
  }

  private at(k: number): number {
    return this.picked ? (this.picked[k] as number) : this.from + k;
  }

  get bytes(): number {
    if (this.encoded) return this.encoded.length;
    return this.encoding === 'binary' ? this.bound : Math.ceil(this.bound * textPerBound[this.encoding]);
  }

  get retainedBytes(): number {
    return this.b ? this.b.byteLength : (this.encoded as Buffer).length;
  }

  get oldestTsNs(): number {
    if (Number.isNaN(this.oldest)) {
      const b = this.b as EventBatch; // held until `oldest` is known (write)
      let oldest = b.tsApproxNs(this.at(0));
      for (let k = 1; k < this.count; k++) oldest = Math.min(oldest, b.tsApproxNs(this.at(k)));
      this.oldest = oldest;
    }
    return this.oldest;
  }

  get body(): Buffer {
    return this.encoded ?? this.write(false);
  }

  /** Writes the body now as memory of its own (binary: a copy, never a
   * view) and lets go of the batch (`SPARSE_SHARE`). Called on a chunk
   * just made, before anything read its body. */
  detach() {
    if (!this.encoded) this.write(true);
  }

  /** Writes the body (`own`: never a view into the batch) and, when the
   * body is its own memory (JSON always), lets go of the batch. */
  private write(own: boolean): Buffer {
    const body = this.encode(own);
    this.encoded = body;
    if (this.encoding !== 'binary') textPerBound[this.encoding] += (body.length / this.bound - textPerBound[this.encoding]) / 8;
    if (own || this.encoding !== 'binary') {
      void this.oldestTsNs; // computed while the batch is here
      this.b = null;
      this.picked = null;
    }
    return body;
  }

  /** The body; `own`: never a view into the batch (binary). */
  private encode(own: boolean): Buffer {
    const { from, to, picked, count } = this;
    const b = this.b as EventBatch; // only called while held
    if (this.encoding !== 'binary') {
      const rows = this.encoding === 'json-rows';
      const native = this.writer ? this.writer(b, from, to, picked, this.kinds, rows) : null;
      if (native) return native;
      const write = rows ? eventRow : eventJson;
      const parts: string[] = new Array(count);
      for (let k = 0; k < count; k++) parts[k] = write(b, this.at(k), this.kinds);
      return Buffer.from(`[${parts.join(',')}]}`); // closes the message the head opened
    }
    if (!picked) return own ? Buffer.from(b.records(from, to)) : b.records(from, to); // contiguous records: a view, no copy
    // Runs of consecutive picked records are one view each; one run needs no copy.
    const runs: Buffer[] = [];
    for (let k = 0; k < count; ) {
      let e = k + 1;
      while (e < count && picked[e] === (picked[e - 1] as number) + 1) e++;
      runs.push(b.records(picked[k] as number, (picked[e - 1] as number) + 1));
      k = e;
    }
    if (runs.length > 1) return Buffer.concat(runs);
    return own ? Buffer.from(runs[0] as Buffer) : (runs[0] as Buffer);
  }
}

/**
 * Filters and encodes the events of `ranges` with seq >= `minSeq` in chunks
 * of at most `max` events and about `maxBytes` bytes of records each (a
 * chunk ends after the record that reaches `maxBytes`, so one larger than
 * `maxBytes` is a chunk of its own; JSON text is about 1.4 times the
 * records' bytes).
 */
export function encodeChunks(
  ranges: readonly EventRange[],
  f: Filter,
  minSeq: number,
  max: number,
  encoding: Encoding,
  kinds: KindTable,
  maxBytes = Infinity,
): Chunk[] {
  const chunks: BatchChunk[] = [];
  const all = matchesAll(f);
  for (const { batch: b, start, end } of ranges) {
    const lo = Math.max(start, minSeq - b.firstSeq);
    const off = b.offsets;
    const first = chunks.length;
    let covered = 0; // bytes of this batch's records in its chunks
    if (all) {
      for (let a = lo; a < end; ) {
        let e = a + 1;
        while (e < end && e - a < max && (off[e] as number) - (off[a] as number) < maxBytes) e++;
        chunks.push(new BatchChunk(b, a, e, null, encoding, kinds, (off[e] as number) - (off[a] as number)));
        a = e;
      }
      if (end > lo) covered = (off[end] as number) - (off[lo] as number);
    } else {
      let picked: number[] = [];
      let bytes = 0;
      for (let i = lo; i < end; i++) {
        if (!matches(f, b, i)) continue;
        picked.push(i);
        bytes += (off[i + 1] as number) - (off[i] as number);
        if (picked.length === max || bytes >= maxBytes) {
          chunks.push(new BatchChunk(b, 0, 0, picked, encoding, kinds, bytes));
          covered += bytes;
          picked = [];
          bytes = 0;
        }
      }
      if (picked.length) chunks.push(new BatchChunk(b, 0, 0, picked, encoding, kinds, bytes));
      covered += bytes;
    }
    if (covered < SPARSE_SHARE * b.byteLength) for (let k = first; k < chunks.length; k++) (chunks[k] as BatchChunk).detach();
  }
  return chunks;
}
