/**
 * Binary encoding of protocol v1 (subprotocol `evbridge.v1.binary`): event
 * batches as binary frames whose records are the ring's own layout, so the
 * daemon ships the bytes it drained. Control messages stay JSON text frames.
 * Layout: PROTOCOL.md, "Binary encoding". Decoding never throws.
 */

export const BINARY_MAGIC = 0xeb;
export const BINARY_VERSION = 1;
export const FRAME_EVENTS = 1;
/** Bytes of each record's header; the payload follows. */
export const RECORD_HEADER = 48;
/** Records are padded to a multiple of this. */
export const RECORD_ALIGN = 64;
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

/** Frame header for `count` records for subscription `sub` (1..64 UTF-8 bytes). */
export function encodeEventsHeader(sub: string, count: number, wallMinusMonoNs: bigint): Uint8Array {
  const id = utf8.encode(sub);
  if (id.length < 1 || id.length > 64) throw new RangeError('subscription id must be 1 to 64 bytes');
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
}

/** One event decoded from a binary frame: its record, plus wall-clock Unix
 * ms from tsNs and the frame's clock offset. The payload is a view into the
 * frame. */
export interface BinaryEvent extends RecordFields {
  timeMs: number;
}

/** Encodes one record in the ring layout. */
export function encodeRecord(r: RecordFields): Uint8Array {
  const len = Math.ceil((RECORD_HEADER + r.payload.length) / RECORD_ALIGN) * RECORD_ALIGN;
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  v.setUint32(0, len, true);
  v.setUint32(4, r.payload.length, true);
  v.setUint32(8, r.kind, true);
  v.setUint32(12, r.source, true);
  v.setUint32(16, r.flags, true);
  v.setBigUint64(24, BigInt(r.sourceSeq), true);
  v.setBigUint64(32, r.tsNs, true);
  v.setBigUint64(40, BigInt(r.seq), true);
  out.set(r.payload, RECORD_HEADER);
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
  if (idLen < 1 || idLen > 64) return fail(`subscription id length ${idLen} is outside 1..64`);
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
    const recLen = v.getUint32(off, true);
    const len = v.getUint32(off + 4, true);
    if (recLen < RECORD_HEADER || recLen % 8 !== 0 || off + recLen > buf.length) return fail(`record ${i} has bad length ${recLen}`);
    if (len > recLen - RECORD_HEADER) return fail(`record ${i} payload length ${len} exceeds its record`);
    const seq = v.getBigUint64(off + 40, true);
    const sourceSeq = v.getBigUint64(off + 24, true);
    if (seq > BigInt(Number.MAX_SAFE_INTEGER) || sourceSeq > BigInt(Number.MAX_SAFE_INTEGER)) return fail(`record ${i} has a sequence number above 2^53`);
    const tsNs = v.getBigUint64(off + 32, true);
    events.push({
      seq: Number(seq),
      kind: v.getUint32(off + 8, true),
      source: v.getUint32(off + 12, true),
      flags: v.getUint32(off + 16, true),
      sourceSeq: Number(sourceSeq),
      tsNs,
      timeMs: Number((tsNs + wallMinusMonoNs) / 1_000_000n),
      payload: buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len),
    });
    off += recLen;
  }
  if (off !== buf.length) return fail(`${buf.length - off} bytes after the last record`);
  return { ok: true, frame: { sub, wallMinusMonoNs, events } };
}
