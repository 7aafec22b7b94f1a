// The bridge's JSON writer (evb_json_writer_run, through json-native.ts) against
// the JavaScript one (eventJson, eventRow): byte for byte the same events
// arrays, in both formats (objects and rows, and each row the object's
// values in ROW_FIELDS order), each chunk's text within its bound and
// counted exactly once written, for generated batches, whole ranges and picked
// records, every field up to its largest value; and a malformed batch
// refused (and counted), never read past its end.
import fc from 'fast-check';
import t from 'tap';
import { EventBatch } from '../daemon/batch.js';
import { KindTable } from '../daemon/engine.js';
import { type Chunk, encodeChunks, jsonBound, useJsonWriter } from '../daemon/fanout/encode.js';
import { kindTableBytes, nativeJsonWriter } from '../daemon/fanout/json-native.js';
import { openNative } from '../daemon/native.js';
import { encodeRecord } from '../protocol/binary.js';
import { REC } from '../protocol/records.js';
import { ROW_FIELDS } from '../protocol/messages.js';
import type { Filter } from '../daemon/fanout/filter.js';

const KINDS = new KindTable([
  { name: 'udp', number: 1 },
  { name: 'tick', number: 2 },
  { name: 'md_quote_with_a_32_byte_name_xyz', number: 31 },
]);
const native = openNative();

const subject = fc
  .array(fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom(...'abcXYZ019_-:+@#$%&ü€'.split('')) }), { minLength: 1, maxLength: 4 })
  .map((tokens) => tokens.join('.'));
const rec = fc.record({
  kind: fc.constantFrom(1, 2, 31, 7), // 7 is undeclared: "unknown"
  source: fc.integer({ min: 0, max: 0xffffffff }),
  sourceSeq: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 53n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  tsNs: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 53n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  payload: fc.uint8Array({ maxLength: 300 }),
  subject: fc.option(subject, { nil: undefined }),
});
type Rec = typeof rec extends fc.Arbitrary<infer R> ? R : never;

function batchOf(recs: Rec[], firstSeq: number): EventBatch {
  const bytes = Buffer.concat(
    recs.map((r, i) => {
      const b = Buffer.from(encodeRecord({ seq: firstSeq + i, kind: r.kind, source: r.source, sourceSeq: 0, flags: 0, tsNs: r.tsNs, payload: r.payload, ...(r.subject !== undefined ? { subject: r.subject } : {}) }));
      b.writeBigUInt64LE(r.sourceSeq, REC.sourceSeq);
      return b;
    }),
  );
  return new EventBatch(bytes, recs.length, firstSeq);
}

const ALL: Filter = { kindMask: null, sources: null, subjects: null, key: '*' };
const TICKS: Filter = { kindMask: 1 << 2, sources: null, subjects: null, key: '4' };
const bodies = (chunks: Chunk[]) => chunks.map((c) => c.body.toString('latin1'));

t.test('the kind-name table holds each declared name at its number', async (t) => {
  const tab = kindTableBytes(KINDS);
  t.equal(tab.length, 33 * 32);
  t.equal(tab[2 * 33], 4);
  t.equal(tab.toString('latin1', 2 * 33 + 1, 2 * 33 + 5), 'tick');
  t.equal(tab[31 * 33], 32);
  t.equal(tab[7 * 33], 0, 'an undeclared kind has length 0');
});

t.test('native and JavaScript writers give the same bytes', async (t) => {
  const stats = { written: 0, tooLarge: 0, refused: 0 };
  const writer = nativeJsonWriter(native, stats);
  let runs = 0;
  try {
    fc.assert(
      fc.property(
        fc.array(rec, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 2 ** 52 }),
        fc.constantFrom(ALL, TICKS),
        fc.integer({ min: 1, max: 17 }),
        fc.constantFrom('json' as const, 'json-rows' as const),
        (recs, firstSeq, f, max, encoding) => {
          const filter = f;
          const b = batchOf(recs, firstSeq);
          const ranges = [{ batch: b, start: 0, end: b.count }];
          useJsonWriter(null);
          const js = bodies(encodeChunks(ranges, filter, firstSeq + 1, max, encoding, KINDS));
          useJsonWriter(writer);
          const natChunks = encodeChunks(ranges, filter, firstSeq + 1, max, encoding, KINDS);
          const counted = natChunks.map((c) => c.bytes); // before the body is written
          const nat = bodies(natChunks);
          useJsonWriter(null);
          natChunks.forEach((c, i) => {
            // The records the chunk holds: its seq range, those the filter takes.
            let span = 0;
            for (let k = c.first - firstSeq; k <= c.last - firstSeq; k++) if (filter === ALL || b.kindNo(k) === 2) span += (b.offsets[k + 1] as number) - (b.offsets[k] as number);
            const bound = jsonBound(c.count, span);
            if (c.body.length > bound || (counted[i] as number) > bound) throw new Error(`${encoding}: a chunk of ${c.body.length} bytes, counted as ${counted[i]} before it was written, past its bound ${bound}`);
            if (c.bytes !== c.body.length) throw new Error(`${encoding}: a written chunk counts ${c.bytes} bytes, not its ${c.body.length}`);
          });
          runs++;
          if (js.length !== nat.length || js.some((s, i) => s !== nat[i])) throw new Error(`${encoding} differs:\njs  ${js.join('\n')}\nnat ${nat.join('\n')}`);
          // Valid JSON once the head is put in front; a row holds the object's values in ROW_FIELDS order.
          const parsed = nat.map((s) => (JSON.parse(`{"events":${s}`) as { events: unknown[] }).events).flat();
          if (encoding === 'json-rows') {
            const objects = bodies(encodeChunks(ranges, filter, firstSeq + 1, max, 'json', KINDS)).map((s) => (JSON.parse(`{"events":${s}`) as { events: Record<string, unknown>[] }).events).flat();
            const asRows = objects.map((o) => ROW_FIELDS.filter((k) => k in o).map((k) => o[k]));
            if (JSON.stringify(asRows) !== JSON.stringify(parsed)) throw new Error(`rows are not the objects' values:\n${JSON.stringify(asRows)}\n${JSON.stringify(parsed)}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  } finally {
    useJsonWriter(null);
  }
  t.equal(runs, 300);
  t.ok(stats.written > 300, `the bridge wrote ${stats.written} chunks`);
  t.equal(stats.refused + stats.tooLarge, 0);
});

t.test('once chunks were written, an unwritten JSON chunk is counted within 10 % of its text', async (t) => {
  const batch = (firstSeq: number) =>
    batchOf(Array.from({ length: 256 }, (_, i) => ({ kind: 2 as const, source: 3, sourceSeq: BigInt(i), tsNs: 81723645512034n + BigInt(i), payload: new Uint8Array(64).fill(i), subject: undefined })), firstSeq);
  for (const encoding of ['json', 'json-rows'] as const) {
    for (let k = 0; k < 40; k++) encodeChunks([{ batch: batch(1 + 256 * k), start: 0, end: 256 }], ALL, 0, 256, encoding, KINDS).forEach((c) => c.body);
    const [c] = encodeChunks([{ batch: batch(1_000_000), start: 0, end: 256 }], ALL, 0, 256, encoding, KINDS);
    const before = c?.bytes as number;
    const text = c?.body.length as number;
    t.ok(Math.abs(before - text) <= 0.1 * text, `${encoding}: counted ${before} bytes before writing, ${text} written (bound ${jsonBound(256, (c?.count ?? 0) * 112)})`);
  }
});

t.test('a malformed batch is refused and a chunk too large for the areas left alone, each counted, and written in JavaScript', async (t) => {
  const stats = { written: 0, tooLarge: 0, refused: 0 };
  const writer = nativeJsonWriter(native, stats);
  const good = batchOf([{ kind: 1, source: 1, sourceSeq: 1n, tsNs: 5n, payload: new Uint8Array([1, 2, 3]), subject: undefined }], 1);
  t.ok(writer(good, 0, 1, null, KINDS, false), 'a well-formed batch is written');
  const bad = Buffer.from(good.bytes);
  const b = new EventBatch(bad, 1, 1);
  bad.writeUInt32LE(1 << 30, REC.payloadLen); // a payload past the end of the batch
  t.equal(writer(b, 0, 1, null, KINDS, false), null);
  const walked = Buffer.from(good.bytes);
  walked.writeUInt32LE(8, REC.recordLen); // a record length shorter than its header
  t.equal(writer(new EventBatch(walked, 1, 1), 0, 1, null, KINDS, false), null);
  t.equal(stats.refused, 2, 'both refused and counted');
  const big = batchOf([{ kind: 2, source: 1, sourceSeq: 1n, tsNs: 5n, payload: new Uint8Array(3 << 20), subject: undefined }], 9);
  t.equal(writer(big, 0, 1, null, KINDS, false), null, 'a chunk larger than the input area is left to JavaScript');
  t.equal(stats.tooLarge, 1, 'and counted');
  useJsonWriter(writer);
  try {
    const chunks = encodeChunks([{ batch: good, start: 0, end: 1 }], ALL, 0, 256, 'json', KINDS);
    t.match(chunks[0]?.body.toString(), /^\[\{"seq":1,"kind":"udp"/);
    const large = encodeChunks([{ batch: big, start: 0, end: 1 }], ALL, 0, 256, 'json', KINDS);
    t.equal(JSON.parse(`{"e":${large[0]?.body.toString()}`).e[0].payload.length, 4 << 20, 'the large chunk written in JavaScript');
  } finally {
    useJsonWriter(null);
  }
});
