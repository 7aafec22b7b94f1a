// EventBatch (the drained batch, read by index from its bytes), the JSON
// event encoder that skips JSON.stringify, and the replay window over
// batches, checked against plain models with fast-check.
import fc from 'fast-check';
import t from 'tap';
import { EventBatch } from '../daemon/engine.js';
import { ReplayWindow } from '../daemon/replay.js';
import { eventJson } from '../daemon/ws.js';
import { encodeRecord } from '../protocol/binary.js';
import { KIND_NAMES, KIND_NUMBER } from '../protocol/messages.js';

const rec = fc.record({
  kind: fc.constantFrom(...KIND_NAMES),
  source: fc.integer({ min: 0, max: 0xffffffff }),
  sourceSeq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  tsNs: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 53n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  payload: fc.uint8Array({ maxLength: 200 }),
});
type Rec = typeof rec extends fc.Arbitrary<infer R> ? R : never;

function batchOf(recs: Rec[], firstSeq: number, monoNowNs = 5e12, wallNowMs = 1.7e12): EventBatch {
  const bytes = Buffer.concat(
    recs.map((r, i) => encodeRecord({ seq: firstSeq + i, kind: KIND_NUMBER[r.kind], source: r.source, sourceSeq: r.sourceSeq, flags: 0, tsNs: r.tsNs, payload: r.payload })),
  );
  return new EventBatch(bytes, recs.length, firstSeq, monoNowNs, wallNowMs);
}

t.test('EventBatch reads every field of every record, and eventJson equals JSON.stringify', async (t) => {
  let checked = 0;
  fc.assert(
    fc.property(fc.array(rec, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 2 ** 40 }), (recs, firstSeq) => {
      const b = batchOf(recs, firstSeq);
      recs.forEach((r, i) => {
        const e = b.event(i);
        const want = { seq: firstSeq + i, kind: r.kind, source: r.source, sourceSeq: r.sourceSeq, tsNs: r.tsNs };
        const got = { seq: e.seq, kind: e.kind, source: e.source, sourceSeq: e.sourceSeq, tsNs: e.tsNs };
        if (JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) !== JSON.stringify(want, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) {
          throw new Error(`record ${i}: ${JSON.stringify(got, (_k, v) => String(v))}`);
        }
        if (!Buffer.from(r.payload).equals(e.payload)) throw new Error(`record ${i} payload differs`);
        const viaStringify = JSON.stringify({
          seq: e.seq,
          kind: e.kind,
          source: e.source,
          source_seq: e.sourceSeq,
          ts: e.tsNs.toString(),
          time: Math.round(e.timeMs),
          payload: e.payload.toString('base64'),
        });
        if (eventJson(b, i) !== viaStringify) throw new Error(`eventJson differs:\n${eventJson(b, i)}\n${viaStringify}`);
        checked++;
      });
    }),
  );
  t.ok(checked > 100, `${checked} records compared`);
  t.equal(batchOf([{ kind: 'gen', source: 1, sourceSeq: 0, tsNs: 2n ** 64n - 1n, payload: new Uint8Array(0) }], 1).tsString(0), '18446744073709551615', 'u64 timestamps above 2^53 stay exact');
});

t.test('ReplayWindow holds the newest events, within both bounds, byte for byte', async (t) => {
  let cases = 0;
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
            sizes.map((n, i) => ({ kind: 'gen', source: seq + i, sourceSeq: 0, tsNs: 1n, payload: new Uint8Array(n).fill(seq + i) })),
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
        const ranges = w.since(from);
        const got = ranges.flatMap((r) => Array.from({ length: r.end - r.start }, (_, k) => ({ seq: r.batch.firstSeq + r.start + k, rec: r.batch.records(r.start + k, r.start + k + 1) })));
        const first = Math.max(from, w.oldestSeq ?? seq);
        if (got.length !== Math.max(0, seq - first)) throw new Error(`since(${from}) gave ${got.length} events`);
        got.forEach((g, k) => {
          if (g.seq !== first + k || !g.rec.equals(pushed[g.seq - 1] as Buffer)) throw new Error(`since(${from}): event ${k} (seq ${g.seq}) differs`);
        });
        cases++;
      },
    ),
  );
  t.ok(cases >= 100, `${cases} generated cases matched`);
});
