// npm run bench:adapters: the figures issue 11 asks of the adapters and of
// subject filtering, on this machine, in one run. Prints markdown tables
// and writes bench/ADAPTERS.md.
//
//   1. pcap: per-packet cost on the capture thread (bench/adapters/
//      pcap_callback.c), and packets/s from a capture file through the
//      daemon to one binary subscriber (the file is streamed through a FIFO
//      once the subscriber is on, so the rate is the path's, not a replay of
//      history).
//   2. MQTT: messages/s from a mosquitto broker to 1 and 10 binary WebSocket
//      subscribers (through the mqtt adapter), beside what mosquitto_sub
//      receives from the same broker at the same time. QoS 0, 64-byte
//      payloads, ten mosquitto_pub processes (one per topic) as fast as they can.
//   3. Subject patterns: one binary subscriber, the generator offering more
//      than it takes, with and without patterns that match every event, so
//      only the cost of matching differs.
//
// Needs libpcap-dev, libmosquitto-dev, mosquitto and mosquitto-clients.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientPool, fanoutCase, sleep, startDaemon } from '../e2e/fanout.mjs';
import { progressLog, rate } from '../e2e/format.mjs';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const quick = process.argv.includes('--quick');
const build = join(root, 'native', 'build');
const plugins = join(build, 'plugins');
const tmp = mkdtempSync(join(os.tmpdir(), 'evb-bench-adapters-'));
const started = Date.now();
const log = progressLog(started);
const out = [];

for (const need of [join(plugins, 'libevb_pcap.so'), join(plugins, 'libevb_mqtt.so'), '/usr/sbin/mosquitto', '/usr/bin/mosquitto_sub']) {
  if (!existsSync(need)) {
    console.error(`missing ${need}: apt-get install libpcap-dev libmosquitto-dev mosquitto mosquitto-clients, then npm install`);
    process.exit(2);
  }
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

// ---- 1. pcap ---------------------------------------------------------------
const PACKETS = quick ? 50_000 : 200_000;
const lib = join(root, 'native/bridge/target/release');
execFileSync('cc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', join(build, 'make_pcap'), join(root, 'native/test/make_pcap.c')]);
execFileSync('cc', ['-std=c11', '-O2', '-g', '-Wall', '-Wextra', '-Werror', `-I${join(root, 'native/include')}`, '-o', join(build, 'pcap_callback'), join(root, 'bench/adapters/pcap_callback.c'), `-L${lib}`, `-Wl,-rpath,${lib}`, '-levbridge', '-ldl', '-lpthread']);
const file = join(tmp, 'frames.pcap');
execFileSync(join(build, 'make_pcap'), [file, String(PACKETS)]);
const fileBytes = readFileSync(file).length;
const rows = [];
for (let r = 0; r < 3; r++) rows.push(execFileSync(join(build, 'pcap_callback'), [join(plugins, 'libevb_pcap.so'), file, String(PACKETS)], { encoding: 'utf8' }).trim());
log('pcap: callback cost done');
out.push(
  '## 1. pcap adapter',
  '',
  `A capture file of ${PACKETS} generated frames (native/test/make_pcap.c: IPv4 and IPv6 with UDP, TCP and ICMP, VLAN, ARP, cut frames, random bytes; ${(fileBytes / PACKETS).toFixed(0)} bytes a frame on average), replayed by the adapter as fast as libpcap reads it, into a 64 MiB ring that a consumer thread drains. Per-packet cost: the adapter's call into the bridge, timed on the capture thread around \`evb_on_event\` (bench/adapters/pcap_callback.c hosts the plugin as the daemon does), the median empty timed interval subtracted. Three runs:`,
  '',
  '| packets handed over | accepted into the ring | callback p50 | p99 | p99.9 | packets/s on the capture thread | timer overhead |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...rows,
  '',
);

// Through the daemon: the file streamed into a FIFO once the subscriber is on.
const fifo = join(tmp, 'frames.fifo');
execFileSync('mkfifo', [fifo]);
const header = readFileSync(file).subarray(0, 24);
const body = readFileSync(file).subarray(24);
// The adapter opens the FIFO at create: hold it open for writing first.
const writerReady = new Promise((resolve) => {
  const w = createWriteStream(fifo);
  w.once('open', () => resolve(w));
});
const pool = await clientPool(10);
const pd = startDaemon(['--engine-plugin', join(plugins, 'libevb_pcap.so'), '--engine-config', JSON.stringify({ file: fifo }), '--ring-capacity-bytes', String(64 << 20)]);
const writer = await writerReady;
writer.write(header);
const d1 = await pd;
const [c1] = pool.clients;
await c1.req({ cmd: 'connect', url: d1.url, server: 'evbridge', encoding: 'binary' });
await c1.req({ cmd: 'start' });
const t0 = process.hrtime.bigint();
await new Promise((resolve) => writer.end(body, resolve));
const settled = await c1.req({ cmd: 'settle', lastSeq: PACKETS, timeoutMs: 60_000 });
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const m1 = await d1.metrics();
await c1.req({ cmd: 'close', terminate: true });
await d1.stop();
log('pcap: daemon path done');
out.push(
  `Through the daemon to one binary WebSocket subscriber (the file streamed into a FIFO the adapter reads, once the subscriber was on): ${settled.received} of ${PACKETS} packets received in ${secs.toFixed(2)} s, **${rate(settled.received / secs)} packets/s** (${((fileBytes / secs) * 8e-9).toFixed(2)} Gbit/s of capture file); ring drops ${m1.get('evbridge_callbacks_dropped_total{reason="ring_full"}')}, shed for the subscriber ${m1.get('evbridge_ws_events_dropped_total{reason="slow_consumer"}')}, sequence violations ${settled.violations}.`,
  '',
);

// ---- 2. MQTT ---------------------------------------------------------------
const MESSAGES = quick ? 50_000 : 200_000;
const port = await freePort();
writeFileSync(join(tmp, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n`);
const broker = spawn('/usr/sbin/mosquitto', ['-c', join(tmp, 'mosquitto.conf')], { stdio: 'ignore' });
await sleep(500);
const mqttRows = [];
for (const n of [1, 10]) {
  const d = await startDaemon(['--engine-plugin', join(plugins, 'libevb_mqtt.so'), '--engine-config', JSON.stringify({ port, topics: ['bench/#'], qos: 0, clean_session: true })]);
  const used = pool.clients.slice(0, n);
  await Promise.all(used.map((c) => c.req({ cmd: 'connect', url: d.url, server: 'evbridge', encoding: 'binary' })));
  const sub = spawn('/usr/bin/mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'bench/#', '-q', '0', '-C', String(MESSAGES)], { stdio: ['ignore', 'pipe', 'ignore'] });
  let subLines = 0;
  let subLast = 0n;
  sub.stdout.on('data', (b) => {
    const now = process.hrtime.bigint();
    subLast = now;
    for (const x of b) if (x === 10) subLines++;
  });
  await sleep(1000); // the adapter and mosquitto_sub are subscribed
  await Promise.all(used.map((c) => c.req({ cmd: 'start' })));
  // Ten mosquitto_pub processes (one per topic), each publishing its lines
  // of 64 bytes as fast as it can (-l: one message per line of stdin).
  const line = `${'x'.repeat(64)}\n`;
  const p0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 10 }, (_, k) => {
      const pub = spawn('/usr/bin/mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', `bench/t${k}`, '-q', '0', '-l'], { stdio: ['pipe', 'ignore', 'ignore'] });
      pub.stdin.end(line.repeat(MESSAGES / 10));
      return new Promise((r) => pub.once('exit', r));
    }),
  );
  const pubSecs = Number(process.hrtime.bigint() - p0) / 1e9;
  const settle = await Promise.all(
    used.map(async (c) => {
      const r = await c.req({ cmd: 'settle', lastSeq: MESSAGES, timeoutMs: 20_000 });
      return { ...r, secs: Number(process.hrtime.bigint() - p0) / 1e9 };
    }),
  );
  await Promise.all(used.map((c) => c.req({ cmd: 'stop' })));
  await new Promise((r) => (sub.exitCode !== null ? r() : (sub.once('exit', r), setTimeout(() => (sub.kill(), r()), 5000))));
  const m = await d.metrics();
  await Promise.all(used.map((c) => c.req({ cmd: 'close', terminate: true })));
  await d.stop();
  const got = settle.map((s) => s.received).sort((a, b) => a - b);
  const perClient = settle.map((r) => r.received / r.secs).sort((a, b) => a - b);
  mqttRows.push(
    `| ${n} | ${MESSAGES} | ${rate(MESSAGES / pubSecs)} | ${m.get('evbridge_engine_messages_total')} | ${got[0]} to ${got[got.length - 1]} | ${rate(perClient[Math.floor(perClient.length / 2)])} | ${rate(perClient.reduce((a, b) => a + b, 0))} | ${subLines} | ${subLast ? rate(subLines / (Number(subLast - p0) / 1e9)) : '–'} |`,
  );
  log(`mqtt: ${n} subscribers done`);
}
broker.kill();
out.push(
  '## 2. MQTT adapter',
  '',
  `Ten \`mosquitto_pub -l\` processes, one per topic, send ${MESSAGES} QoS-0 messages of 64 bytes in all to a local mosquitto as fast as they can; the adapter (subscribed to \`bench/#\`, QoS 0) and \`mosquitto_sub\` receive them from the same broker at the same time. Rates are per receiver: messages received over the time from the first publish to its last message. mosquitto drops QoS-0 messages for a subscriber that falls behind; the counts say what each received.`,
  '',
  '| WebSocket subscribers | published | publish rate | adapter received | each subscriber received | per subscriber msgs/s (median) | total msgs/s to subscribers | mosquitto_sub received | mosquitto_sub msgs/s |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...mqttRows,
  '',
);

// ---- 3. Subject patterns -----------------------------------------------------
const subjects = ['md.XNAS.AAPL', 'md.XNYS.IBM'];
const cases = [
  ['no pattern', undefined],
  ['`md.>`', { subjects: ['md.>'] }],
  ['`md.*.*`', { subjects: ['md.*.*'] }],
  ['`md.XNAS.AAPL`, `md.XNYS.IBM`', { subjects }],
];
const patternRows = [];
for (const [name, filter] of cases) {
  const runs = [];
  for (let r = 0; r < (quick ? 1 : 3); r++) {
    runs.push(await fanoutCase(pool, { server: 'evbridge', encoding: 'binary', n: 1, rate: 3_000_000, seconds: quick ? 2 : 5, warmup: 1, filter, daemonArgs: ['--engine-set', `generator.subjects=${JSON.stringify(subjects)}`] }));
  }
  const tot = runs.map((x) => x.total).sort((a, b) => a - b);
  patternRows.push({ name, med: tot[Math.floor(tot.length / 2)], min: tot[0], max: tot[tot.length - 1], violations: runs.reduce((a, x) => a + x.violations, 0) });
  log(`patterns: ${name} done`);
}
pool.kill();
const base = patternRows[0].med;
out.push(
  '## 3. Subject-pattern filtering',
  '',
  `One binary subscriber; the generator (one thread, subjects \`md.XNAS.AAPL\` and \`md.XNYS.IBM\` in turn, 64-byte payloads) offers 3 M events/s, more than the subscriber takes; every pattern set below matches every event, so the output is the same and only matching differs. Events/s received, ${quick ? 'one run' : 'median [min, max] of 3 runs'}:`,
  '',
  '| filter | events/s | × no pattern | seq violations |',
  '| --- | --- | --- | --- |',
  ...patternRows.map((r) => `| ${r.name} | ${rate(r.med)} [${rate(r.min)}, ${rate(r.max)}] | ${(r.med / base).toFixed(2)} | ${r.violations} |`),
  '',
);

const mosq = spawnSync('/usr/sbin/mosquitto', ['-h'], { encoding: 'utf8' }).stdout.split('\n')[0];
const head = [
  '# Adapter benchmarks',
  '',
  `- date: ${new Date().toISOString()}; command: \`npm run bench:adapters${quick ? ' -- --quick' : ''}\` (${((Date.now() - started) / 1000).toFixed(0)} s); commit ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()}`,
  `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}; ${mosq}; libpcap ${execFileSync('sh', ['-c', "dpkg-query -W -f='${Version}' libpcap0.8 2>/dev/null || true"], { encoding: 'utf8' })}`,
  '- shared, noisy machine: compare ratios within this run.',
  '',
];
const text = [...head, ...out].join('\n');
writeFileSync(join(root, 'bench', 'ADAPTERS.md'), `${text}\n`);
console.log(text);
process.exit(0);
