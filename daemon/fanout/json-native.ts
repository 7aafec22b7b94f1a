/**
 * The JSON subprotocol's events arrays written by the bridge (its JSON
 * writer, native/bridge/src/json.rs) instead of in JavaScript: one FFI call
 * per chunk (at most `ws.batchMaxEvents` events), no string per event. Its
 * output is byte for byte that of `eventJson`, or of `eventRow` for a
 * subscription in rows (test/json-native.test.ts).
 *
 * The writer's two areas are bridge memory mapped once as Buffers
 * (`createExternalBuffer`). Per chunk: the chunk's records are copied into
 * the input area with a request (`evb_json_request_t`, layout from
 * protocol/layout.ts), `evb_json_writer_run` is called with one argument
 * (ffi-rs costs a few µs per argument, so the request does not travel as
 * arguments), and the result is copied out into the chunk's own Buffer.
 * A chunk larger than an area is written in JavaScript. Both are counted
 * (`evbridge_json_native_chunks_total`).
 *
 * Main thread only. The writer lives as long as the process.
 *
 * Used by the ingest when `ws.jsonEncoder` is `native` (the default); the
 * edge role has no native code and always writes JSON in JavaScript.
 */
import type { EventBatch } from '../batch.js';
import { wallOffsetParts } from '../clock.js';
import { Errors } from '../errors.js';
import type { KindTable } from '../kinds.js';
import type { Native } from '../native.js';
import { NATIVE_LAYOUT } from '../../protocol/layout.js';
import type { JsonWriter } from './encode.js';

const ENTRY = NATIVE_LAYOUT.json_kind_entry_len;
const FIXED = NATIVE_LAYOUT.json_event_fixed_max;
const KINDS_AT = NATIVE_LAYOUT.json_kinds_offset;
const PICKS_AT = NATIVE_LAYOUT.json_picks_offset;
const REQ = NATIVE_LAYOUT.structs.evb_json_request_t.fields;
/** Input area, bytes: a chunk's records (a chunk is cut near the frame
 * size, `ws` limits) with room for the request, kinds and picks. */
export const JSON_INPUT_BYTES = 2 << 20;
/** Output area, bytes: JSON takes about twice the records' bytes. */
export const JSON_OUTPUT_BYTES = 4 << 20;
const TWO_32 = 2 ** 32;

/** The kind-name table the writer reads: per kind number 0 to `kind_max`,
 * a length byte (0: undeclared, written "unknown") and the name. */
export function kindTableBytes(kinds: KindTable): Buffer {
  const t = Buffer.alloc(ENTRY * (NATIVE_LAYOUT.kind_max + 1));
  kinds.names.forEach((name, n) => {
    if (name === undefined) return;
    t[n * ENTRY] = t.write(name, n * ENTRY + 1, ENTRY - 1, 'latin1');
  });
  return t;
}

/** What the writer has done, for the metrics. */
export interface NativeJsonStats {
  /** Chunks written by the bridge. */
  written: number;
  /** Chunks larger than an area, written in JavaScript. */
  tooLarge: number;
  /** Runs the bridge refused (only a malformed batch causes one), then written in JavaScript. */
  refused: number;
}

/**
 * A `JsonWriter` over the bridge `native`.
 * @throws EvbError EVB_ERR_NATIVE_CALL when the bridge cannot make a writer.
 */
export function nativeJsonWriter(native: Native, stats: NativeJsonStats): JsonWriter {
  const w = native.jsonWriterNew(JSON_INPUT_BYTES, JSON_OUTPUT_BYTES);
  if (native.isNull(w)) throw Errors.EVB_ERR_NATIVE_CALL('evb_json_writer_new', native.statusName(native.lastStatus()));
  const input = native.wrap(native.jsonWriterInput(w), JSON_INPUT_BYTES);
  const output = native.wrap(native.jsonWriterOutput(w), JSON_OUTPUT_BYTES);
  let tableOf: KindTable | null = null;
  return (b: EventBatch, from: number, to: number, picked: readonly number[] | null, kinds: KindTable, rows: boolean): Buffer | null => {
    const count = picked ? picked.length : to - from;
    const lo = picked ? (picked[0] as number) : from;
    const hi = picked ? (picked[count - 1] as number) + 1 : to;
    const start = b.offsets[lo] as number;
    const span = (b.offsets[hi] as number) - start;
    const picks = picked ? count : 0;
    const recordsAt = Math.ceil((PICKS_AT + picks * 4) / 8) * 8;
    // Base64 and subjects take at most 4/3 of the records' bytes, plus 3 per event for padding.
    if (recordsAt + span > JSON_INPUT_BYTES || count * (FIXED + 3) + Math.ceil((span * 4) / 3) + 3 > JSON_OUTPUT_BYTES) {
      stats.tooLarge++;
      return null;
    }
    if (tableOf !== kinds) {
      kindTableBytes(kinds).copy(input, KINDS_AT);
      tableOf = kinds;
    }
    const firstSeq = b.firstSeq + lo;
    const [ms, remNs] = wallOffsetParts();
    input.writeUInt32LE(firstSeq % TWO_32, REQ.first_seq[0]);
    input.writeUInt32LE(Math.floor(firstSeq / TWO_32), REQ.first_seq[0] + 4);
    input.writeDoubleLE(ms, REQ.wall_offset_ms[0]);
    input.writeDoubleLE(remNs, REQ.wall_offset_rem_ns[0]);
    input.writeUInt32LE(span, REQ.records_len[0]);
    input.writeUInt32LE(count, REQ.count[0]);
    input.writeUInt32LE(picks, REQ.picks[0]);
    input.writeUInt32LE(rows ? NATIVE_LAYOUT.json_format_rows : NATIVE_LAYOUT.json_format_objects, REQ.format[0]);
    for (let k = 0; k < picks; k++) input.writeUInt32LE((picked as readonly number[])[k] as number - lo, PICKS_AT + 4 * k);
    b.bytes.copy(input, recordsAt, start, start + span);
    const n = native.jsonWriterRun(w);
    if (n < 0) {
      stats.refused++;
      return null;
    }
    stats.written++;
    return Buffer.from(output.subarray(0, n));
  };
}
