/**
 * Encoding events for the wire: the events of one batch that match one
 * filter, cut into chunks of at most `ws.batchMaxEvents`, each the body of one
 * `events` message, in JSON text or as ring records (binary). A chunk is
 * shared by every subscription with that filter and encoding; the
 * per-subscription head (its id) is a separate fragment (session.ts).
 */
import type { EventBatch } from '../batch.js';
import type { KindTable } from '../engine.js';
import type { EventRange } from '../replay.js';
import { type Filter, matches, matchesAll } from './filter.js';

export type Encoding = 'json' | 'binary';

/** Events of one batch that match one filter: the UTF-8 text of the JSON
 * events array and the message's closing brace, or the concatenated ring
 * records (binary). */
export interface Chunk {
  readonly body: Buffer;
  /** Seqs of the first and last event. */
  readonly first: number;
  readonly last: number;
  readonly count: number;
  /** Engine timestamp of the oldest event, ns (EventBatch.tsApproxNs). */
  readonly oldestTsNs: number;
}

/**
 * Writes the JSON events array of a chunk (records `from..to` of `b`, or
 * the `picked` indexes), `[...]}`, as `chunkOf` does with `eventJson`; or
 * returns null to leave it to `eventJson`. The bridge's writer
 * (json-native.ts) is one.
 */
export type JsonWriter = (b: EventBatch, from: number, to: number, picked: readonly number[] | null, kinds: KindTable) => Buffer | null;

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

/** Encodes events of one batch as one chunk: the index range [from, to),
 * or just the listed indexes when `picked` is given. */
function chunkOf(b: EventBatch, from: number, to: number, picked: number[] | null, encoding: Encoding, kinds: KindTable): Chunk {
  const count = picked ? picked.length : to - from;
  const at = (k: number) => (picked ? (picked[k] as number) : from + k);
  let oldest = b.tsApproxNs(at(0));
  for (let k = 1; k < count; k++) oldest = Math.min(oldest, b.tsApproxNs(at(k)));
  let body: Buffer;
  const native = encoding === 'json' && jsonWriter ? jsonWriter(b, from, to, picked, kinds) : null;
  if (native) {
    body = native;
  } else if (encoding === 'json') {
    const parts: string[] = new Array(count);
    for (let k = 0; k < count; k++) parts[k] = eventJson(b, at(k), kinds);
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
  const chunks: Chunk[] = [];
  const all = matchesAll(f);
  for (const { batch: b, start, end } of ranges) {
    const lo = Math.max(start, minSeq - b.firstSeq);
    const off = b.offsets;
    if (all) {
      for (let a = lo; a < end; ) {
        let e = a + 1;
        while (e < end && e - a < max && (off[e] as number) - (off[a] as number) < maxBytes) e++;
        chunks.push(chunkOf(b, a, e, null, encoding, kinds));
        a = e;
      }
      continue;
    }
    let picked: number[] = [];
    let bytes = 0;
    for (let i = lo; i < end; i++) {
      if (!matches(f, b, i)) continue;
      picked.push(i);
      bytes += (off[i + 1] as number) - (off[i] as number);
      if (picked.length === max || bytes >= maxBytes) {
        chunks.push(chunkOf(b, 0, 0, picked, encoding, kinds));
        picked = [];
        bytes = 0;
      }
    }
    if (picked.length) chunks.push(chunkOf(b, 0, 0, picked, encoding, kinds));
  }
  return chunks;
}
