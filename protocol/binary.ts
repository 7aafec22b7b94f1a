/**
 * Binary encoding of protocol v1 (subprotocol `evbridge.v1.binary`): event
 * batches as binary frames whose records are the ring's own layout
 * (`records.ts`), so the daemon ships the bytes it drained. Control messages
 * stay JSON text frames. Layout: PROTOCOL.md, "Binary encoding". Decoding
 * never throws.
 */
import { RECORD_ALIGN, RECORD_HEADER, REC, recordLength } from './records.js';
import { SUB_ID_MAX_BYTES } from './messages.js';

export const BINARY_MAGIC = 0xeb;
export const BINARY_VERSION = 1;
export const FRAME_EVENTS = 1;
/** Fixed part of an events frame, before the subscription id. */
export const FRAME_HEADER = 16;

export interface EventsFrame {
  sub: string;
  /** Wall-clock minus monotonic clock at the daemon, ns, when it sent the frame. */
  wallMinusMonoNs: bigint;
  events: BinaryEvent[];
}

export type BinaryDecodeResult = { ok: true; frame: EventsFrame } | { ok: false; message: string };

const pad8 = (n: number) => (n + 7) & ~7;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Frame header for `count` records for subscription `sub`.
 * @throws RangeError when `sub` is not 1 to 64 bytes of UTF-8 (ids are
 *   checked when a subscribe arrives, so the daemon never passes one).
 */
export function encodeEventsHeader(sub: string, count: number, wallMinusMonoNs: bigint): Uint8Array {
  const id = utf8.encode(sub);
  if (id.length < 1 || id.length > SUB_ID_MAX_BYTES) throw new RangeError(`subscription id must be 1 to ${SUB_ID_MAX_BYTES} bytes`);
  const out = new Uint8Array(FRAME_HEADER + pad8(id.length));
  const v = new DataView(out.buffer);
  out[0] = BINARY_MAGIC;
  out[1] = BINARY_VERSION;
  out[2] = FRAME_EVENTS;
  out[3] = id.length;
  v.setUint32(4, count, true);
  v.setBigInt64(8, wallMinusMonoNs, true);
  out.set(id, FRAME_HEADER);
  return out;
}

/** Fields of one record (seq numbers exact below 2^53; tsNs is the engine's
 * CLOCK_MONOTONIC ns). */
export interface RecordFields {
  seq: number;
  kind: number;
  source: number;
  sourceSeq: number;
  flags: number;
  tsNs: bigint;
  payload: Uint8Array;
  /** The subject, or undefined for none. */
  subject?: string;
}

/** One event decoded from a binary frame: its record, plus wall-clock Unix
 * ms, `round((tsNs + wallMinusMonoNs) / 1e6)`, the rule JSON's `time` follows.
 * The payload is a view into the frame. */
export interface BinaryEvent extends RecordFields {
  timeMs: number;
}

/** Encodes one record in the ring layout (padding zeroed). */
export function encodeRecord(r: RecordFields): Uint8Array {
  const subject = r.subject ? utf8.encode(r.subject) : new Uint8Array(0);
  const len = recordLength(r.payload.length, subject.length);
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  v.setUint32(REC.recordLen, len, true);
  v.setUint32(REC.payloadLen, r.payload.length, true);
  v.setUint32(REC.kind, r.kind, true);
  v.setUint32(REC.source, r.source, true);
  v.setUint32(REC.flags, r.flags, true);
  v.setUint32(REC.subjectLen, subject.length, true);
  v.setBigUint64(REC.sourceSeq, BigInt(r.sourceSeq), true);
  v.setBigUint64(REC.tsNs, r.tsNs, true);
  v.setBigUint64(REC.seq, BigInt(r.seq), true);
  out.set(r.payload, RECORD_HEADER);
  out.set(subject, RECORD_HEADER + r.payload.length);
  return out;
}

/** Decodes one binary server frame, checking every length against the frame. */
export function decodeEventsFrame(buf: Uint8Array): BinaryDecodeResult {
  const fail = (message: string): BinaryDecodeResult => ({ ok: false, message });
  if (buf.length < FRAME_HEADER) return fail(`frame of ${buf.length} bytes is shorter than the ${FRAME_HEADER}-byte header`);
  if (buf[0] !== BINARY_MAGIC) return fail(`bad magic 0x${(buf[0] ?? 0).toString(16)}`);
  if (buf[1] !== BINARY_VERSION) return fail(`unsupported binary version ${buf[1]}`);
  if (buf[2] !== FRAME_EVENTS) return fail(`unknown frame type ${buf[2]}`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const idLen = buf[3] ?? 0;
  if (idLen < 1 || idLen > SUB_ID_MAX_BYTES) return fail(`subscription id length ${idLen} is outside 1..${SUB_ID_MAX_BYTES}`);
  const count = v.getUint32(4, true);
  const wallMinusMonoNs = v.getBigInt64(8, true);
  let off = FRAME_HEADER + pad8(idLen);
  if (off > buf.length) return fail('frame ends inside the subscription id');
  let sub: string;
  try {
    sub = utf8Strict.decode(buf.subarray(FRAME_HEADER, FRAME_HEADER + idLen));
  } catch {
    return fail('subscription id is not UTF-8');
  }
  if (count > (buf.length - off) / RECORD_ALIGN) return fail(`count ${count} cannot fit in ${buf.length - off} bytes`);
  const events: BinaryEvent[] = [];
  for (let i = 0; i < count; i++) {
    if (off + RECORD_HEADER > buf.length) return fail(`record ${i} header runs past the frame`);
    const recLen = v.getUint32(off + REC.recordLen, true);
    const len = v.getUint32(off + REC.payloadLen, true);
    const subjectLen = v.getUint32(off + REC.subjectLen, true);
    if (recLen < RECORD_HEADER || recLen % 8 !== 0 || off + recLen > buf.length) return fail(`record ${i} has bad length ${recLen}`);
    if (len + subjectLen > recLen - RECORD_HEADER) return fail(`record ${i} payload and subject (${len} + ${subjectLen} bytes) exceed its record`);
    const seq = v.getBigUint64(off + REC.seq, true);
    const sourceSeq = v.getBigUint64(off + REC.sourceSeq, true);
    if (seq > BigInt(Number.MAX_SAFE_INTEGER) || sourceSeq > BigInt(Number.MAX_SAFE_INTEGER)) return fail(`record ${i} has a sequence number above 2^53`);
    let subject: string | undefined;
    if (subjectLen > 0) {
      try {
        subject = utf8Strict.decode(buf.subarray(off + RECORD_HEADER + len, off + RECORD_HEADER + len + subjectLen));
      } catch {
        return fail(`record ${i} subject is not UTF-8`);
      }
    }
    const tsNs = v.getBigUint64(off + REC.tsNs, true);
    events.push({
      seq: Number(seq),
      kind: v.getUint32(off + REC.kind, true),
      source: v.getUint32(off + REC.source, true),
      flags: v.getUint32(off + REC.flags, true),
      sourceSeq: Number(sourceSeq),
      tsNs,
      timeMs: Number((tsNs + wallMinusMonoNs + 500_000n) / 1_000_000n),
      payload: buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len),
      ...(subject !== undefined ? { subject } : {}),
    });
    off += recLen;
  }
  if (off !== buf.length) return fail(`${buf.length - off} bytes after the last record`);
  return { ok: true, frame: { sub, wallMinusMonoNs, events } };
}
