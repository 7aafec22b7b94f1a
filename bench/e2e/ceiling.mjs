// npm run bench:ceiling: how many events/s one WebSocket client can be sent,
// binary and JSON, with the generator offering more than that (issue 15:
// "the binary ceiling measured with an offered rate above it"). Each case is
// the daemon with its generator (1 or 2 paced threads, 64-byte payloads,
// 4 M events/s offered per thread) and one bench/e2e/client.mjs process
// reading everything and checking every seq. For each case the table gives
// what the generator made (callbacks the bridge saw), what the client got,
// and where the rest went: dropped at the ring (the drain fell behind) or
// shed for the slow consumer (the client fell behind). A ceiling is a
// delivered rate below what was generated. Median of 3 runs, cases
// alternating. Prints markdown and writes bench/CEILING.md.
//   node bench/e2e/ceiling.mjs [--quick]
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientPool, commitOf, fanoutCase } from './fanout.mjs';
import { median, progressLog, rate, us } from './format.mjs';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const quick = process.argv.includes('--quick');
const RUNS = quick ? 1 : 3;
const SECONDS = quick ? 3 : 5;
const PER_THREAD = 4_000_000;
const started = Date.now();
const log = progressLog(started);

const CASES = [];
for (const threads of [1, 2]) for (const encoding of ['binary', 'json']) CASES.push({ threads, encoding });
const pool = await clientPool(1);
const results = new Map();
for (let run = 0; run < RUNS; run++) {
  for (const c of CASES) {
    const r = await fanoutCase(pool, { server: 'evbridge', encoding: c.encoding, n: 1, rate: PER_THREAD * c.threads, threads: c.threads, seconds: SECONDS, warmup: 2 });
    const key = `${c.threads}|${c.encoding}`;
    results.set(key, [...(results.get(key) ?? []), r]);
    log(`${c.threads} thread(s), ${c.encoding}: generated ${rate(r.generated)}/s, delivered ${rate(r.total)}/s, ring drops ${r.ringDropped}, shed ${r.shed}, ${r.violations} violations`);
  }
}
pool.kill();

const lines = [
  '# The one-client ceiling',
  '',
  `- date: ${new Date().toISOString()}; command: \`npm run bench:ceiling${quick ? ' -- --quick' : ''}\` (${((Date.now() - started) / 1000).toFixed(0)} s); median of ${RUNS} run(s) per row; commit ${commitOf()}`,
  `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}; shared and noisy: compare within this run`,
  `- the daemon's generator offers ${rate(PER_THREAD)} events/s per thread (64-byte payloads); one client process (bench/e2e/client.mjs) reads everything and checks every seq; ${SECONDS} s measured after 2 s of warm-up. "generated" counts the callbacks the bridge saw in the window: a paced thread that cannot keep its schedule makes fewer than offered. On 2 cores the generator threads, the daemon's main thread and the client share the machine, so a second generator thread also takes CPU from the consumer side.`,
  '',
  '| generator threads | offered | encoding | generated events/s | delivered events/s | delivered ÷ generated | dropped at the ring (events, window) | shed for the slow consumer (events, window) | latency p50 | p99 | p99.9 | server main thread, µs per event sent | seq violations |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
];
for (const c of CASES) {
  const rs = results.get(`${c.threads}|${c.encoding}`);
  const m = (f) => median(rs.map(f));
  lines.push(
    `| ${c.threads} | ${rate(PER_THREAD * c.threads)} | ${c.encoding} | ${rate(m((r) => r.generated))} | ${rate(m((r) => r.total))} | ${m((r) => r.total / r.generated).toFixed(2)} | ${m((r) => r.ringDropped)} | ${m((r) => r.shed)} | ${us(m((r) => r.p50))} | ${us(m((r) => r.p99))} | ${us(m((r) => r.p999))} | ${m((r) => r.mainUsPerEvent).toFixed(2)} | ${rs.reduce((a, r) => a + r.violations, 0)} |`,
  );
}
const text = `${lines.join('\n')}\n`;
if (!quick) writeFileSync(join(root, 'bench', 'CEILING.md'), text);
console.log(text);
process.exit(0);
