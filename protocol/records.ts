/**
 * The ring record layout, which is also the binary protocol's event
 * encoding, taken from the generated native layout (`layout.ts`, from the
 * bridge's `abi.rs`): the one TypeScript description that the daemon, the
 * binary codec and the clients import.
 *
 * A record is the 48-byte header, the payload, the subject (UTF-8, no NUL),
 * and zero bytes up to a multiple of `RECORD_ALIGN`. Integers are
 * little-endian.
 */
import { NATIVE_LAYOUT } from './layout.js';

const H = NATIVE_LAYOUT.structs.evb_record_header_t;

/** Bytes of a record's header; the payload starts here. */
export const RECORD_HEADER: number = H.size;
/** Records start at multiples of this many bytes in the ring (and in frames). */
export const RECORD_ALIGN: number = NATIVE_LAYOUT.record_align;
/** Longest subject, bytes of UTF-8. */
export const SUBJECT_MAX: number = NATIVE_LAYOUT.subject_max;
/** Largest kind number; kinds are 0 to this. */
export const KIND_MAX: number = NATIVE_LAYOUT.kind_max;
/** Longest kind name, bytes. */
export const KIND_NAME_MAX: number = NATIVE_LAYOUT.kind_name_max;

/** Byte offset of each header field within a record. */
export const REC = {
  /** u32: record length, header to end of padding. */
  recordLen: H.fields.record_len[0],
  /** u32: payload length. */
  payloadLen: H.fields.payload_len[0],
  /** u32: kind number. */
  kind: H.fields.kind[0],
  /** u32: source id. */
  source: H.fields.source_id[0],
  /** u32: source flags. */
  flags: H.fields.flags[0],
  /** u32: subject length (0 for none). */
  subjectLen: H.fields.subject_len[0],
  /** u64: per-source sequence number. */
  sourceSeq: H.fields.source_seq[0],
  /** u64: engine timestamp, CLOCK_MONOTONIC ns. */
  tsNs: H.fields.ts_ns[0],
  /** u64: global sequence number. */
  seq: H.fields.seq[0],
} as const;

/** Bytes a record with `payload` and `subject` bytes occupies. */
export function recordLength(payload: number, subject: number): number {
  return Math.ceil((RECORD_HEADER + payload + subject) / RECORD_ALIGN) * RECORD_ALIGN;
}
