// npm run bench:json: the JSON path of issue 15, the bridge's JSON writer
// (ws.jsonEncoder native, the default) against the JavaScript writer it
// replaced (ws.jsonEncoder js, the same bytes), in one run, the two
// alternating so that both see the same machine. Every case is the daemon
// with its generator (one thread, 64-byte payloads) and binary-checked
// clients from bench/e2e/client.mjs, each its own process, reading
// everything and checking every seq. Median of 3 runs per case.
// Prints markdown and writes bench/JSON.md.
//   node bench/e2e/json.mjs [--quick]
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
const started = Date.now();
const log = progressLog(started);

const CASES = [
  { name: 'cost: 1 client at 300 k events/s', n: 1, rate: 300_000 },
  { name: 'throughput: 1 client, offered 1.5 M/s', n: 1, rate: 1_500_000 },
  { name: 'latency: 10 clients at 100 k events/s', n: 10, rate: 100_000 },
];
const pool = await clientPool(10);
const results = new Map(); // `${case}|${encoder}` -> runs
for (let run = 0; run < RUNS; run++) {
  for (const c of CASES) {
    for (const encoder of ['js', 'native']) {
      const r = await fanoutCase(pool, { server: 'evbridge', encoding: 'json', n: c.n, rate: c.rate, seconds: SECONDS, warmup: 2, daemonArgs: ['--ws-json-encoder', encoder] });
      const key = `${c.name}|${encoder}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      log(`${c.name}, ${encoder}: ${rate(r.total)} events/s in total, p99 ${us(r.p99)}, ${r.violations} violations`);
    }
  }
}
pool.kill();

const row = (c, encoder) => {
  const rs = results.get(`${c.name}|${encoder}`);
  return {
    total: median(rs.map((r) => r.total)),
    perClient: median(rs.map((r) => r.perClientMedian)),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    p999: median(rs.map((r) => r.p999)),
    violations: rs.reduce((a, r) => a + r.violations, 0),
    peak: median(rs.map((r) => r.serverPeakMiB)),
    mainUs: median(rs.map((r) => r.mainUsPerEvent)),
  };
};
const lines = [
  '# The JSON path: the bridge\'s writer against the JavaScript one',
  '',
  `- date: ${new Date().toISOString()}; command: \`npm run bench:json${quick ? ' -- --quick' : ''}\` (${((Date.now() - started) / 1000).toFixed(0)} s); median of ${RUNS} run(s) per row, the two writers alternating; commit ${commitOf()}`,
  `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}; shared and noisy: compare ratios within this run`,
  '- "server main thread, µs per event sent" is the CPU time of the daemon\'s main thread (drain, fan-out, encoding, socket writes) over the events the clients received; events shed for a slow client were encoded too, so it is the cost per event only in rows where the clients keep up (the cost row). On 2 cores the generator thread (pacing) and the JSON-parsing clients share the machine with the daemon, which bounds the throughput row.',
  `- the daemon's generator (one thread, 64-byte payloads) offers the rate shown; clients are processes of bench/e2e/client.mjs on the JSON subprotocol, each reading everything; ${SECONDS} s measured after 2 s of warm-up. \`js\` is \`--ws-json-encoder js\`, the writer of the commit before (same bytes, test/json-native.test.ts).`,
  '',
  '| case | offered | writer | delivered events/s, total | per client (median) | latency p50 | p99 | p99.9 | server main thread, µs per event sent | seq violations | server peak RSS | native ÷ js |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
];
for (const c of CASES) {
  const js = row(c, 'js');
  for (const encoder of ['js', 'native']) {
    const r = row(c, encoder);
    const ratio = `${(r.total / js.total).toFixed(2)}× events/s, ${(r.mainUs / js.mainUs).toFixed(2)}× µs per event`;
    lines.push(`| ${c.name} | ${rate(c.rate)} | ${encoder} | ${rate(r.total)} | ${rate(r.perClient)} | ${us(r.p50)} | ${us(r.p99)} | ${us(r.p999)} | ${r.mainUs.toFixed(2)} | ${r.violations} | ${r.peak.toFixed(0)} MiB | ${encoder === 'native' ? ratio : ''} |`);
  }
}
const text = `${lines.join('\n')}\n`;
if (!quick) writeFileSync(join(root, 'bench', 'JSON.md'), text);
console.log(text);
process.exit(0);
