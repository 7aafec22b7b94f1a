// npm run bench:nats: the scale-out figures of issue 14, on this machine, in
// one run, against real nats-server processes (Debian's nats-server,
// JetStream on, file storage in a temporary directory). Prints markdown
// and writes bench/NATS.md.
//
//   1. Ingest to JetStream, sustained: the daemon's generator offers more
//      than can be published; published events/s over the window, on one
//      node and on a three-node cluster with an R3 stream (all on this
//      machine's cores). Beside it, the same client library publishing one
//      event per `await js.publish()`, the way a user would start.
//   2. End to end at 100 k events/s: engine -> ingest -> JetStream -> two
//      edges -> one binary client on each; latency from the engine
//      timestamp to receipt (one machine, one CLOCK_MONOTONIC).
//   3. Total deliveries/s to 10 binary clients: one standalone daemon,
//      against one ingest and two edges (5 clients each).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { clientPool, commitOf, cpuSeconds, fanoutCase, mergedQuantiles, sleep, startDaemon } from '../e2e/fanout.mjs';
import { progressLog, rate, us } from '../e2e/format.mjs';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const quick = process.argv.includes('--quick');
/** Only section 3's scaled-out row, with the first violations logged (for a look at one case). */
const scaledOnly = process.argv.includes('--scaled-only');
const WINDOW = quick ? 10 : 60;
const started = Date.now();
const log = progressLog(started);

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startNats(n) {
  const ports = [];
  for (let i = 0; i < n; i++) ports.push({ client: await freePort(), cluster: await freePort(), monitor: await freePort() });
  const procs = ports.map((p, i) => {
    const args = ['-a', '127.0.0.1', '-p', String(p.client), '-m', String(p.monitor), '-js', '-sd', mkdtempSync(join(os.tmpdir(), 'evb-bench-nats-')), '-n', `n${i}`];
    if (n > 1) args.push('--cluster_name', 'evb', '--cluster', `nats://127.0.0.1:${p.cluster}`, '--routes', ports.filter((_, k) => k !== i).map((q) => `nats://127.0.0.1:${q.cluster}`).join(','));
    return spawn('/usr/sbin/nats-server', args, { stdio: 'ignore' });
  });
  for (const p of ports) {
    for (let k = 0; ; k++) {
      try {
        if ((await fetch(`http://127.0.0.1:${p.monitor}/healthz`)).ok) break;
      } catch {}
      if (k > 300) throw new Error('nats-server not healthy');
      await sleep(100);
    }
  }
  return { urls: ports.map((p) => `127.0.0.1:${p.client}`), stop: () => procs.forEach((p) => p.kill('SIGKILL')), pids: procs.map((p) => p.pid) };
}

const out = [];

// ---- 1. Ingest to JetStream --------------------------------------------------
async function ingestCase(n) {
  const nats = await startNats(n);
  const d = await startDaemon(['--nats-servers', nats.urls.join(','), '--nats-replicas', String(n), '--engine-set', 'generator.threads=1', '--engine-set', 'generator.rate=0', '--engine-set', 'generator.payloadBytes=64']);
  await sleep(3000); // warm-up
  const m0 = await d.metrics();
  const cpuD0 = cpuSeconds(d.p.pid);
  const cpuN0 = nats.pids.reduce((a, p) => a + cpuSeconds(p), 0);
  const t0 = Date.now();
  await sleep(WINDOW * 1000);
  const m1 = await d.metrics();
  const secs = (Date.now() - t0) / 1000;
  const cpuD = (cpuSeconds(d.p.pid) - cpuD0) / secs;
  const cpuN = (nats.pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpuN0) / secs;
  const g = (k) => m1.get(k) - m0.get(k);
  await d.stop();
  nats.stop();
  return {
    nodes: n,
    published: g('evbridge_nats_published_events_total') / secs,
    messages: g('evbridge_nats_published_messages_total') / secs,
    delivered: g('evbridge_events_delivered_total') / secs,
    dropped: g('evbridge_nats_events_dropped_total{reason="queue_full"}'),
    ringDropped: g('evbridge_callbacks_dropped_total{reason="ring_full"}'),
    retries: ['timeout', 'no_connection', 'out_of_order', 'refused'].reduce((a, r) => a + g(`evbridge_nats_publish_retries_total{reason="${r}"}`), 0),
    cpuD,
    cpuN,
  };
}

async function perEventBaseline(n) {
  const nats = await startNats(n);
  const nc = await connect({ servers: nats.urls });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'BASE', subjects: ['base'], num_replicas: n });
  const js = jetstream(nc);
  const payload = new Uint8Array(64);
  let count = 0;
  const end = Date.now() + (quick ? 5000 : 15000);
  const t0 = Date.now();
  while (Date.now() < end) {
    await js.publish('base', payload);
    count++;
  }
  const r = count / ((Date.now() - t0) / 1000);
  await nc.close();
  nats.stop();
  return r;
}

const ingestRows = [];
for (const n of scaledOnly ? [] : [1, 3]) {
  const base = await perEventBaseline(n);
  log(`per-event js.publish on ${n} node(s): ${rate(base)}/s`);
  const r = await ingestCase(n);
  log(`ingest on ${n} node(s): ${rate(r.published)} events/s`);
  ingestRows.push({ ...r, base });
}
out.push(
  '## 1. Ingest to JetStream, sustained',
  '',
  `The daemon's generator (one thread, 64-byte payloads) offers as much as it can; the ingest publishes runs of up to 1,024 events (256 KiB) per JetStream message (the defaults) with up to 1,024 messages awaiting acknowledgement, and drops (counted) what does not fit in its 32 MiB queue. ${WINDOW} s measured after 3 s of warm-up. "One js.publish per event" is the same client library (@nats-io/jetstream 3.4) awaiting each publish of one 64-byte event, for ${quick ? 5 : 15} s. All processes share this machine's ${os.cpus().length} cores.`,
  '',
  '| NATS | published events/s | messages/s | drained events/s | dropped at the ingest (queue full) | ring drops | publish retries | ingest CPU (cores) | nats-server CPU (cores, all nodes) | one js.publish per event | × that |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...ingestRows.map(
    (r) =>
      `| ${r.nodes === 1 ? '1 node, R1' : '3 nodes, R3'} | ${rate(r.published)} | ${rate(r.messages)} | ${rate(r.delivered)} | ${r.dropped} | ${r.ringDropped} | ${r.retries} | ${r.cpuD.toFixed(2)} | ${r.cpuN.toFixed(2)} | ${rate(r.base)} | ${(r.published / r.base).toFixed(0)}× |`,
  ),
  '',
);

// ---- 2 and 3. Through edges ---------------------------------------------------
const pool = await clientPool(10);
async function edgesCase({ offered, clients, seconds }) {
  const nats = await startNats(1);
  const ing = await startDaemon(['--nats-servers', nats.urls[0], '--engine-set', 'generator.threads=1', '--engine-set', `generator.rate=${offered}`, '--engine-set', 'generator.payloadBytes=64']);
  const edges = [await startDaemon(['--role', 'edge', '--nats-servers', nats.urls[0]]), await startDaemon(['--role', 'edge', '--nats-servers', nats.urls[0]])];
  await sleep(2000);
  const used = pool.clients.slice(0, clients);
  await Promise.all(used.map((c, i) => c.req({ cmd: 'connect', url: edges[i % 2].url, server: 'evbridge', encoding: 'binary' })));
  await sleep(2000);
  await Promise.all(used.map((c) => c.req({ cmd: 'start' })));
  const cpu0 = [ing, ...edges].map((d) => cpuSeconds(d.p.pid));
  const cpuN0 = cpuSeconds(nats.pids[0]);
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const reps = await Promise.all(used.map((c) => c.req({ cmd: 'stop' })));
  const secs = (Date.now() - t0) / 1000;
  const cpu = [ing, ...edges].map((d, i) => (cpuSeconds(d.p.pid) - cpu0[i]) / secs);
  const cpuN = (cpuSeconds(nats.pids[0]) - cpuN0) / secs;
  const settle = await Promise.all(used.map((c) => c.req({ cmd: 'settle', lastSeq: 0, timeoutMs: 0 })));
  await Promise.all(used.map((c) => c.req({ cmd: 'close', terminate: true })));
  const lat = await mergedQuantiles(reps);
  await Promise.all([ing.stop(), ...edges.map((e) => e.stop())]);
  nats.stop();
  return { total: reps.reduce((a, r) => a + r.events / r.seconds, 0), ...lat, violations: settle.reduce((a, s) => a + s.violations, 0), gaps: settle.reduce((a, s) => a + s.gapDropped, 0), upstream: settle.reduce((a, s) => a + s.upstreamDropped, 0), notes: settle.flatMap((s) => s.violationNotes ?? []).slice(0, 10), cpu, cpuN };
}


if (scaledOnly) {
  const r = await edgesCase({ offered: 3_000_000, clients: 10, seconds: quick ? 5 : 10 });
  log(`ingest + 2 edges, 10 clients: ${rate(r.total)}, ${r.violations} violations: ${r.notes.join('; ')}`);
  pool.kill();
  process.exit(0);
}
const e2e = await edgesCase({ offered: 100_000, clients: 2, seconds: quick ? 5 : 15 });
log(`edges at 100 k/s: ${rate(e2e.total)} in total, p99 ${us(e2e.p99)}`);
const standalone = await fanoutCase(pool, { server: 'evbridge', encoding: 'binary', n: 10, rate: 3_000_000, seconds: quick ? 5 : 10, warmup: 2 });
log(`standalone, 10 clients: ${rate(standalone.total)}`);
const scaled = await edgesCase({ offered: 3_000_000, clients: 10, seconds: quick ? 5 : 10 });
if (scaled.notes.length) log(`first violations: ${scaled.notes.join('; ')}`);
log(`ingest + 2 edges, 10 clients: ${rate(scaled.total)}`);
pool.kill();
out.push(
  '## 2. End to end through two edges at 100 k events/s',
  '',
  'engine (generator, 100 k events/s, 64-byte payloads) → ingest → JetStream (one node) → two edges → one binary client on each (bench/e2e/client.mjs, which checks every seq). Latency: engine timestamp to receipt.',
  '',
  '| delivered events/s (both clients) | latency p50 | p99 | p99.9 | seq violations | shed for the clients (slow_consumer gaps) | dropped before JetStream (ingest_dropped gaps, summed over clients) | CPU ingest / edge 1 / edge 2 / nats-server (cores) |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  `| ${rate(e2e.total)} | ${us(e2e.p50)} | ${us(e2e.p99)} | ${us(e2e.p999)} | ${e2e.violations} | ${e2e.gaps} | ${e2e.upstream} | ${[...e2e.cpu, e2e.cpuN].map((c) => c.toFixed(2)).join(' / ')} |`,
  '',
  '## 3. Total deliveries to 10 binary clients',
  '',
  `The generator offers 3 M events/s, more than either setup delivers; each client reads everything it is sent (shed events arrive as gap notices). A seq violation is an event or gap notice that does not start at the next seq due. All processes share the same ${os.cpus().length} cores, so the second row measures the cost of the extra hop, not the gain of more machines.`,
  '',
  '| setup | delivered events/s, total | per client (median) | latency p50 | p99 | seq violations | dropped before JetStream (ingest_dropped gaps, summed over clients) | CPU (cores) |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  `| one standalone daemon | ${rate(standalone.total)} | ${rate(standalone.perClientMedian)} | ${us(standalone.p50)} | ${us(standalone.p99)} | ${standalone.violations} | – | – |`,
  `| ingest + 2 edges (5 clients each) + nats-server | ${rate(scaled.total)} | ${rate(scaled.total / 10)} | ${us(scaled.p50)} | ${us(scaled.p99)} | ${scaled.violations} | ${scaled.upstream} | ingest ${scaled.cpu[0].toFixed(2)}, edges ${scaled.cpu[1].toFixed(2)} and ${scaled.cpu[2].toFixed(2)}, nats-server ${scaled.cpuN.toFixed(2)} |`,
  '',
);

const text = [
  '# Scale-out benchmarks (NATS JetStream)',
  '',
  `- date: ${new Date().toISOString()}; command: \`npm run bench:nats${quick ? ' -- --quick' : ''}\` (${((Date.now() - started) / 1000).toFixed(0)} s); commit ${commitOf()}`,
  `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}; nats-server from Debian; @nats-io/transport-node and @nats-io/jetstream 3.4`,
  '- shared, noisy machine: compare ratios within this run.',
  '',
  ...out,
].join('\n');
writeFileSync(join(root, 'bench', 'NATS.md'), `${text}\n`);
console.log(text);
process.exit(0);
