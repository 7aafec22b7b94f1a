// EventBatch (the drained batch, read by index from its bytes), the JSON
// event encoder that skips JSON.stringify, and the replay window over
// batches, checked against plain models with fast-check.
import fc from 'fast-check';
import t from 'tap';
import { EventBatch } from '../daemon/batch.js';
import { wallMs } from '../daemon/clock.js';
import { KindTable } from '../daemon/engine.js';
import { eventJson } from '../daemon/fanout/encode.js';
import { ReplayWindow } from '../daemon/replay.js';
import { encodeRecord } from '../protocol/binary.js';
import { validSubject } from '../protocol/subjects.js';

const KINDS = new KindTable([
  { name: 'udp', number: 1 },
  { name: 'tick', number: 2 },
  { name: 'gen', number: 3 },
  { name: 'md_quote', number: 31 },
]);
const KIND_NAMES = KINDS.list.map((k) => k.name);
/** Subjects by the bridge's rule, from tokens of printable ASCII and some UTF-8. */
const subject = fc
  .array(fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom(...'abcXYZ019_-:+@#$%&ü€'.split('')) }), { minLength: 1, maxLength: 4 })
  .map((tokens) => tokens.join('.'));

const rec = fc.record({
  kind: fc.constantFrom(...KIND_NAMES),
  source: fc.integer({ min: 0, max: 0xffffffff }),
  sourceSeq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  tsNs: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 53n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  payload: fc.uint8Array({ maxLength: 200 }),
  subject: fc.option(subject, { nil: undefined }),
});
type Rec = typeof rec extends fc.Arbitrary<infer R> ? R : never;

function batchOf(recs: Rec[], firstSeq: number): EventBatch {
  const bytes = Buffer.concat(
    recs.map((r, i) =>
      encodeRecord({
        seq: firstSeq + i,
        kind: KINDS.byName.get(r.kind) as number,
        source: r.source,
        sourceSeq: r.sourceSeq,
        flags: 0,
        tsNs: r.tsNs,
        payload: r.payload,
        ...(r.subject !== undefined ? { subject: r.subject } : {}),
      }),
    ),
  );
  return new EventBatch(bytes, recs.length, firstSeq);
}

t.test('EventBatch reads every field of every record, and eventJson equals JSON.stringify', async (t) => {
  fc.assert(
    fc.property(fc.array(rec, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 2 ** 40 }), (recs, firstSeq) => {
      const b = batchOf(recs, firstSeq);
      recs.forEach((r, i) => {
        const e = b.event(i);
        if (r.subject !== undefined && !validSubject(r.subject)) throw new Error(`the generator made an invalid subject ${r.subject}`);
        const want = { seq: firstSeq + i, kind: r.kind, source: r.source, sourceSeq: r.sourceSeq, tsNs: r.tsNs, subject: r.subject };
        const got = { seq: e.seq, kind: KINDS.name(e.kind), source: e.source, sourceSeq: e.sourceSeq, tsNs: e.tsNs, subject: e.subject };
        if (JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) !== JSON.stringify(want, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) {
          throw new Error(`record ${i}: ${JSON.stringify(got, (_k, v) => String(v))}`);
        }
        if (!Buffer.from(r.payload).equals(e.payload)) throw new Error(`record ${i} payload differs`);
        const viaStringify = JSON.stringify({
          seq: e.seq,
          kind: r.kind,
          source: e.source,
          source_seq: e.sourceSeq,
          ts: e.tsNs.toString(),
          time: e.timeMs,
          payload: e.payload.toString('base64'),
          ...(r.subject !== undefined ? { subject: r.subject } : {}),
        });
        if (eventJson(b, i, KINDS) !== viaStringify) throw new Error(`eventJson differs:\n${eventJson(b, i, KINDS)}\n${viaStringify}`);
      });
    }),
  );
  // The rule for `time`: round((ts + offset) / 1e6), halves up, exact for every ts below 2^53.
  const b = batchOf([{ kind: 'gen', source: 0, sourceSeq: 0, tsNs: 123_456_789_500_000n, payload: new Uint8Array(0), subject: undefined }], 1);
  t.equal(b.timeMs(0), wallMs(123_456_789_500_000));
  t.equal(wallMs(1_000_000) - wallMs(0), 1, 'one millisecond apart');
  t.equal(batchOf([{ kind: 'gen', source: 1, sourceSeq: 0, tsNs: 2n ** 64n - 1n, payload: new Uint8Array(0), subject: undefined }], 1).tsString(0), '18446744073709551615', 'u64 timestamps above 2^53 stay exact');
});

t.test('ReplayWindow holds the newest events, within both bounds, byte for byte', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 64, max: 4000 }),
      fc.array(fc.array(fc.integer({ min: 0, max: 150 }), { minLength: 1, maxLength: 10 }), { maxLength: 12 }),
      fc.integer({ min: 0, max: 120 }),
      (maxEvents, maxBytes, batches, from) => {
        const w = new ReplayWindow(maxEvents, maxBytes);
        const pushed: Buffer[] = []; // record bytes by seq - 1
        let seq = 1;
        for (const sizes of batches) {
          const b = batchOf(
            sizes.map((n, i) => ({ kind: 'gen', source: seq + i, sourceSeq: 0, tsNs: 1n, payload: new Uint8Array(n).fill(seq + i), subject: undefined })),
            seq,
          );
          for (let i = 0; i < b.count; i++) pushed.push(Buffer.from(b.records(i, i + 1)));
          seq += b.count;
          w.push(b);
          const last = pushed[pushed.length - 1] as Buffer;
          if (last.length > maxBytes) {
            if (w.length !== 0) throw new Error('a record larger than the window must empty it');
            continue;
          }
          const oldest = w.oldestSeq as number;
          if (w.length < 1 || oldest + w.length !== seq) throw new Error(`window [${oldest}, +${w.length}) is not a suffix ending at ${seq - 1}`);
          if (w.length > maxEvents) throw new Error(`${w.length} events > ${maxEvents}`);
          const held = pushed.slice(oldest - 1).reduce((n, r) => n + r.length, 0);
          if (held !== w.heldBytes || held > maxBytes) throw new Error(`held ${w.heldBytes} bytes (model ${held}) > ${maxBytes}`);
          const largest = Math.max(...pushed.slice(oldest - 2).map((r) => r.length));
          if (w.length < maxEvents && oldest > 1 && held <= maxBytes - 2 * largest) throw new Error(`evicted too much: ${held} of ${maxBytes} bytes held`);
        }
        // Read it all in slices, as a resume does.
        const ranges: ReturnType<ReplayWindow['read']> = [];
        for (let cursor = from, slice = w.read(cursor, 7, 300); slice.length > 0; slice = w.read(cursor, 7, 300)) {
          for (const r of slice) {
            if (r.end - r.start > 7) throw new Error('a slice holds more events than asked');
            cursor = r.batch.firstSeq + r.end;
          }
          ranges.push(...slice);
        }
        const got = ranges.flatMap((r) => Array.from({ length: r.end - r.start }, (_, k) => ({ seq: r.batch.firstSeq + r.start + k, rec: r.batch.records(r.start + k, r.start + k + 1) })));
        const first = Math.max(from, w.oldestSeq ?? seq);
        if (got.length !== Math.max(0, seq - first)) throw new Error(`read from ${from} gave ${got.length} events`);
        got.forEach((g, k) => {
          if (g.seq !== first + k || !g.rec.equals(pushed[g.seq - 1] as Buffer)) throw new Error(`read from ${from}: event ${k} (seq ${g.seq}) differs`);
        });
      },
    ),
  );
});
