// Codecs shared by daemon and clients: property-based round trips
// (fast-check), and malformed input that must give clean errors, never an
// exception that escapes.
import fc from 'fast-check';
import t from 'tap';
import { decodeEventsFrame, encodeEventsHeader, encodeRecord, type RecordFields } from '../protocol/binary.js';
import { decodeClientFrame, encodeServerMessage } from '../protocol/json.js';
import type { ServerMessage } from '../protocol/messages.js';
import { compilePattern, matchSubject } from '../protocol/subjects.js';

const KIND_NAMES = ['udp', 'tick', 'gen', 'packet', 'mqtt_message'];
const token = fc.string({ minLength: 1, maxLength: 6, unit: fc.constantFrom(...'abcXYZ019_-:ü'.split('')) });
const subjectArb = fc.array(token, { minLength: 1, maxLength: 4 }).map((ts) => ts.join('.'));

const record = fc.record({
  seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  kind: fc.integer({ min: 0, max: 0xffffffff }),
  source: fc.integer({ min: 0, max: 0xffffffff }),
  sourceSeq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  flags: fc.integer({ min: 0, max: 0xffffffff }),
  tsNs: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
  payload: fc.uint8Array({ maxLength: 300 }),
  subject: fc.option(subjectArb, { nil: undefined }),
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
        if (e.seq !== want.seq || e.kind !== want.kind || e.source !== want.source || e.sourceSeq !== want.sourceSeq || e.flags !== want.flags || e.tsNs !== want.tsNs || e.subject !== want.subject)
          throw new Error(`record ${i} fields differ`);
        if (Buffer.compare(Buffer.from(e.payload), Buffer.from(want.payload)) !== 0) throw new Error(`record ${i} payload differs`);
        if (e.timeMs !== Number((want.tsNs + offset + 500_000n) / 1_000_000n)) throw new Error('wall time: round((ts + offset) / 1e6), halves up');
      });
    }),
    { numRuns: 300 },
  );
  // One frame, checked field by field against the table in PROTOCOL.md.
  const f = frame('ab', [{ seq: 7, kind: 3, source: 2, sourceSeq: 9, flags: 1, tsNs: 1_500_000n, payload: new Uint8Array([1, 2, 3]), subject: 'a.b' }], 0n);
  t.same([...f.subarray(0, 4)], [0xeb, 1, 1, 2], 'magic, version, type, id length');
  const v = new DataView(f.buffer);
  t.equal(v.getUint32(24, true), 64, 'record length: 48 + 3 + 3, padded to 64');
  t.same([v.getUint32(28, true), v.getUint32(32, true), v.getUint32(36, true), v.getUint32(40, true), v.getUint32(44, true)], [3, 3, 2, 1, 3], 'payload length, kind, source, flags, subject length');
  t.same([...f.subarray(72, 78)], [1, 2, 3, 0x61, 0x2e, 0x62], 'payload, then subject');
  t.ok(f.subarray(78).every((x) => x === 0), 'padding is zero');
  const one = decodeEventsFrame(f);
  t.match(one, { ok: true, frame: { sub: 'ab', events: [{ seq: 7, subject: 'a.b', timeMs: 2 }] } }, '1.5 ms rounds to 2');
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
  t.same(decodeEventsFrame(lying), { ok: false, message: 'record 0 payload and subject (1000 + 0 bytes) exceed its record' });
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
      subjects: fc.array(
        fc.array(fc.oneof(token, fc.constant('*')), { minLength: 1, maxLength: 3 }).chain((ts) => fc.boolean().map((rest) => [...ts, ...(rest ? ['>'] : [])].join('.'))),
        { minLength: 1, maxLength: 16 },
      ),
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
      if (JSON.stringify(r.message) !== JSON.stringify(m)) throw new Error(`decoded ${JSON.stringify(r.message)}`);
    }),
    { numRuns: 300 },
  );
  // Ids are limited in bytes of UTF-8, the unit of the binary frame's id field.
  const sub = (id: string) => decodeClientFrame(JSON.stringify({ type: 'subscribe', id }));
  t.match(sub('a'.repeat(64)), { ok: true }, '64 ASCII characters: 64 bytes');
  t.match(sub('é'.repeat(32)), { ok: true }, '32 two-byte characters: 64 bytes');
  t.same(sub('é'.repeat(33)), { ok: false, code: 'bad_message', message: 'Invalid message at "id": must be 1 to 64 bytes of UTF-8' }, '33 two-byte characters: 66 bytes');
  t.match(sub('😀'.repeat(16)), { ok: true }, '16 four-byte characters: 64 bytes');
  t.match(sub('😀'.repeat(17)), { ok: false, code: 'bad_message' });
  // A frame that names a valid id gets it back in the error.
  t.same(decodeClientFrame('{"type":"subscribe","id":"q","kinds":["Bad"]}'), {
    ok: false,
    code: 'bad_message',
    message: 'Invalid message at "kinds.0": must be 1 to 32 characters of [a-z0-9_]',
    id: 'q',
  });
  t.same(decodeClientFrame('{"type":"subscribe","id":"q","subjects":["a.>.b"]}'), {
    ok: false,
    code: 'bad_message',
    message: 'Invalid message at "subjects.0": pattern "a.>.b" has ">" before its last token',
    id: 'q',
  });
});

t.test('subject patterns match as NATS wildcards do', async (t) => {
  const m = (pattern: string, subject: string) => {
    const p = compilePattern(pattern);
    if (typeof p === 'string') throw new Error(p);
    const b = Buffer.from(`xx${subject}yy`); // in the middle of a buffer, as in a record
    return matchSubject(p, b, 2, Buffer.byteLength(subject));
  };
  const cases: [string, string, boolean][] = [
    ['md.XNAS.AAPL', 'md.XNAS.AAPL', true],
    ['md.XNAS.AAPL', 'md.XNAS.AAP', false],
    ['md.XNAS.AAPL', 'md.XNAS.AAPL.x', false],
    ['md.*.AAPL', 'md.XLON.AAPL', true],
    ['md.*.AAPL', 'md.AAPL', false],
    ['md.>', 'md.XNAS.AAPL', true],
    ['md.>', 'md.x', true],
    ['md.>', 'md', false],
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['>', 'a.b.c', true],
    ['*.*', 'a.b', true],
    ['sensors.*.temp', 'sensors.room1.temp', true],
    ['sensors.*.temp', 'sensors.room1.humidity', false],
    ['ü.*', 'ü.€', true],
  ];
  for (const [p, s, want] of cases) t.equal(m(p, s), want, `${p} ~ ${s}`);
  t.equal(matchSubject(compilePattern('>') as Exclude<ReturnType<typeof compilePattern>, string>, Buffer.alloc(0), 0, 0), false, 'no subject matches no pattern');
  t.equal(compilePattern('a..b'), 'has an invalid token "" (tokens are non-empty, without spaces, control characters, ", \\, or * and > inside a token)');
  // Against a model: split on dots and compare token by token.
  fc.assert(
    fc.property(fc.array(fc.oneof(token, fc.constant('*')), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.array(token, { minLength: 1, maxLength: 5 }), (pt, rest, st) => {
      const pattern = [...pt, ...(rest ? ['>'] : [])].join('.');
      const model = rest ? st.length > pt.length && pt.every((x, i) => x === '*' || x === st[i]) : st.length === pt.length && pt.every((x, i) => x === '*' || x === st[i]);
      if (m(pattern, st.join('.')) !== model) throw new Error(`${pattern} ~ ${st.join('.')}: expected ${model}`);
    }),
    { numRuns: 2000 },
  );
});

t.test('malformed client frames give clean errors, never a throw', async (t) => {
  let refused = 0;
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ type: 'subscribe', id: v }))), (text) => {
      const r = decodeClientFrame(text);
      if (!r.ok) refused++;
      return r.ok || (typeof r.message === 'string' && (r.code === 'bad_json' || r.code === 'bad_message'));
    }),
    { numRuns: 2000 },
  );
  t.ok(refused > 1500, `most random frames are refused (${refused} of 2000)`);
  t.same(decodeClientFrame('{"type":"subscribe","id":"a","extra":1}'), { ok: false, code: 'bad_message', message: 'Invalid message: Unrecognized key: "extra"', id: 'a' });
  t.match(decodeClientFrame('[1'), { ok: false, code: 'bad_json', message: /^Frame is not valid JSON/ });
});

t.test('server messages encode as the JSON a client author expects', async (t) => {
  const gap: ServerMessage = { type: 'gap', sub: 'a', from: 3, to: 9, dropped: 7, reason: 'slow_consumer' };
  t.equal(encodeServerMessage(gap), '{"type":"gap","sub":"a","from":3,"to":9,"dropped":7,"reason":"slow_consumer"}');
});
