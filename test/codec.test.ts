// Codecs shared by daemon and clients: property-based round trips
// (fast-check), and malformed input that must give clean errors, never an
// exception that escapes.
import fc from 'fast-check';
import t from 'tap';
import { decodeEventsFrame, encodeEventsHeader, encodeRecord, type RecordFields } from '../protocol/binary.js';
import { decodeClientFrame, encodeServerMessage } from '../protocol/json.js';
import { KIND_NAMES, type ServerMessage } from '../protocol/messages.js';

const record = fc.record({
  seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  kind: fc.integer({ min: 0, max: 0xffffffff }),
  source: fc.integer({ min: 0, max: 0xffffffff }),
  sourceSeq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  flags: fc.integer({ min: 0, max: 0xffffffff }),
  tsNs: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
  payload: fc.uint8Array({ maxLength: 300 }),
});
const subId = fc.string({ minLength: 1, maxLength: 16, unit: 'grapheme-ascii' });

function frame(sub: string, recs: RecordFields[], offset: bigint): Uint8Array {
  const parts = [encodeEventsHeader(sub, recs.length, offset), ...recs.map(encodeRecord)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

t.test('binary events frames round-trip', async (t) => {
  fc.assert(
    fc.property(subId, fc.array(record, { maxLength: 20 }), fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }), (sub, recs, offset) => {
      const r = decodeEventsFrame(frame(sub, recs, offset));
      if (!r.ok) throw new Error(r.message);
      t.equal(r.frame.sub, sub);
      t.equal(r.frame.wallMinusMonoNs, offset);
      t.equal(r.frame.events.length, recs.length);
      r.frame.events.forEach((e, i) => {
        const want = recs[i] as RecordFields;
        if (e.seq !== want.seq || e.kind !== want.kind || e.source !== want.source || e.sourceSeq !== want.sourceSeq || e.flags !== want.flags || e.tsNs !== want.tsNs)
          throw new Error(`record ${i} fields differ`);
        if (Buffer.compare(Buffer.from(e.payload), Buffer.from(want.payload)) !== 0) throw new Error(`record ${i} payload differs`);
        if (e.timeMs !== Number((want.tsNs + offset) / 1_000_000n)) throw new Error('wall time');
      });
    }),
    { numRuns: 300 },
  );
  t.pass('300 random frames decoded to what was encoded');
});

t.test('malformed binary frames give clean errors, never a throw', async (t) => {
  let errors = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = decodeEventsFrame(bytes); // must not throw
      if (!r.ok) errors++;
      return typeof r.ok === 'boolean';
    }),
    { numRuns: 2000 },
  );
  // Mutations of valid frames: flip bytes, truncate, extend.
  fc.assert(
    fc.property(subId, fc.array(record, { minLength: 1, maxLength: 5 }), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (sub, recs, at, value, cut) => {
      const f = frame(sub, recs, 0n);
      const m = cut ? f.subarray(0, at % f.length) : f.slice();
      if (!cut) m[at % m.length] = value;
      const r = decodeEventsFrame(m);
      if (r.ok) for (const e of r.frame.events) if (e.payload.byteOffset + e.payload.length > m.byteOffset + m.length) throw new Error('payload view out of bounds');
      return true;
    }),
    { numRuns: 2000 },
  );
  t.ok(errors > 1900, `random bytes are refused (${errors} of 2000)`);
  t.same(decodeEventsFrame(new Uint8Array([0xeb, 1, 1])), { ok: false, message: 'frame of 3 bytes is shorter than the 16-byte header' });
  const good = frame('a', [{ seq: 1, kind: 1, source: 0, sourceSeq: 0, flags: 0, tsNs: 5n, payload: new Uint8Array(10) }], 0n);
  const lying = good.slice();
  new DataView(lying.buffer).setUint32(16 + 8 + 4, 1000, true); // payload_len beyond its record
  t.same(decodeEventsFrame(lying), { ok: false, message: 'record 0 payload length 1000 exceeds its record' });
  t.same(decodeEventsFrame(good.subarray(0, good.length - 8)), { ok: false, message: 'count 1 cannot fit in 56 bytes' });
  const long = new Uint8Array(good.length + 64);
  long.set(good);
  t.same(decodeEventsFrame(long), { ok: false, message: '64 bytes after the last record' });
});

const clientMsg = fc.oneof(
  fc.record(
    {
      type: fc.constant('subscribe' as const),
      id: fc.string({ minLength: 1, maxLength: 64 }),
      kinds: fc.uniqueArray(fc.constantFrom(...KIND_NAMES), { minLength: 1 }),
      sources: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 10 }),
      from_seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      epoch: fc.string({ minLength: 1, maxLength: 64 }),
    },
    { requiredKeys: ['type', 'id'] },
  ),
  fc.record({ type: fc.constant('unsubscribe' as const), id: fc.string({ minLength: 1, maxLength: 64 }) }),
);

t.test('client JSON messages round-trip through the decoder', async (t) => {
  fc.assert(
    fc.property(clientMsg, (m) => {
      const r = decodeClientFrame(JSON.stringify(m));
      if (!r.ok) throw new Error(r.message);
      t.same(r.message, m);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random client messages');
});

t.test('malformed client frames give clean errors, never a throw', async (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ type: 'subscribe', id: v }))), (text) => {
      const r = decodeClientFrame(text);
      return r.ok || (typeof r.message === 'string' && (r.code === 'bad_json' || r.code === 'bad_message'));
    }),
    { numRuns: 2000 },
  );
  t.same(decodeClientFrame('{"type":"subscribe","id":"a","extra":1}'), { ok: false, code: 'bad_message', message: 'Invalid message: Unrecognized key: "extra"' });
  t.match(decodeClientFrame('[1'), { ok: false, code: 'bad_json', message: /^Frame is not valid JSON: / });
});

t.test('server messages encode as the JSON a client author expects', async (t) => {
  const gap: ServerMessage = { type: 'gap', sub: 'a', from: 3, to: 9, dropped: 7, reason: 'slow_consumer' };
  t.equal(encodeServerMessage(gap), '{"type":"gap","sub":"a","from":3,"to":9,"dropped":7,"reason":"slow_consumer"}');
});
