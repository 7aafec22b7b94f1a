// Soak test (not part of npm test): the real daemon for a long while under
// everything at once, then the accounting. Writes bench/SOAK.md.
//
//   node bench/soak.mjs [--minutes 30]
//
// Load: the reference engine's generator (20,000 events/s, 64-byte payloads,
// four subjects), a 20 Hz tick and UDP datagrams; 20 readers in both
// encodings with kind, source and subject filters; churn (clients that
// connect, subscribe, unsubscribe and leave, every 200 ms); a slow client
// that reads 2 s in every 10; resumers that drop their connection every
// 5 s and resume from their last seq; and faults every 2 s (bridge panics,
// garbage arguments, stale and late calls).
//
// Reported: RSS every minute, whether it drifts (last 10 minutes), the
// daemon's counters at the end and the checks: callbacks = accepted +
// dropped + invalid + stale + panicked, accepted = delivered, each resumer's
// sequence has no hole and no repeat, the daemon never exited.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const minutes = Number(process.argv[process.argv.indexOf('--minutes') + 1] || 30) || 30;
const endAt = Date.now() + minutes * 60_000;

const d = spawn(process.execPath, [
  join(root, 'dist/daemon/cli.js'), '--http-port', '0', '--fault-injection', 'true',
  '--engine-set', 'udp.port=0', '--engine-set', 'tick.hz=20',
  '--engine-set', 'generator.threads=1', '--engine-set', 'generator.rate=20000',
  '--engine-set', 'generator.subjects=["md.XNAS.AAPL","md.XNAS.MSFT","md.XLON.VOD","ops.heartbeat"]',
], { stdio: ['ignore', 'pipe', 'inherit'] });
let exited = null;
d.on('exit', (c) => (exited = c));
let base;
let udpPort;
let logBytes = 0;
await new Promise((resolve) => {
  let buf = '';
  d.stdout.on('data', (x) => {
    logBytes += x.length;
    buf += x;
    for (const line of buf.split('\n')) {
      if (!line.includes('"evbridge started"')) continue;
      const l = JSON.parse(line);
      base = `127.0.0.1:${l.httpPort}`;
      udpPort = Number(l.sources.find((s) => s.kind === 'udp').detail.split(':').pop());
      resolve();
    }
    buf = buf.slice(buf.lastIndexOf('\n') + 1);
  });
});
const url = `ws://${base}/v1/stream`;
const metrics = async () => {
  const text = await (await fetch(`http://${base}/metrics`)).text();
  const m = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return m;
};
const sum = (m, name) => Object.entries(m).filter(([k]) => k.startsWith(`${name}{`)).reduce((a, [, v]) => a + v, 0);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))[1]) * 1024;
const sockets = new Set();
const open = (protocol) => {
  const ws = new WebSocket(url, [protocol]);
  ws.on('error', () => {});
  sockets.add(ws);
  ws.on('close', () => sockets.delete(ws));
  return ws;
};

// 20 readers.
const filters = [{}, { kinds: ['gen'] }, { kinds: ['tick', 'udp'] }, { subjects: ['md.XNAS.*'] }, { subjects: ['md.>'] }, { sources: [2] }];
let readerEvents = 0;
for (let i = 0; i < 20; i++) {
  const ws = open(i % 2 ? 'evbridge.v1.binary' : 'evbridge.v1.json');
  ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: `r${i}`, ...filters[i % filters.length] })));
  ws.on('message', (data, isBinary) => {
    if (isBinary) readerEvents += data.readUInt32LE(4);
    else {
      const m = JSON.parse(data);
      if (m.type === 'events') readerEvents += m.events.length;
    }
  });
}

// Churn.
let churned = 0;
const churn = setInterval(() => {
  const ws = open('evbridge.v1.json');
  ws.on('open', () => {
    ws.send(JSON.stringify({ type: 'subscribe', id: 'c', kinds: ['gen'], from_seq: 1 }));
    ws.send(JSON.stringify({ type: 'unsubscribe', id: 'c' }));
    setTimeout(() => ws.close(), 50);
    churned++;
  });
}, 200);

// A slow client: reads 2 s in every 10.
const slow = open('evbridge.v1.json');
slow.on('open', () => slow.send(JSON.stringify({ type: 'subscribe', id: 's' })));
const slowTimer = setInterval(() => {
  slow.pause();
  setTimeout(() => slow.resume(), 8000);
}, 10_000);

// Resumers: exact sequence accounting across reconnects.
const resumers = Array.from({ length: 3 }, (_, i) => ({ i, next: undefined, epoch: undefined, events: 0, gaps: 0, violations: 0, reconnects: 0, ws: undefined }));
const connectResumer = (r) => {
  const ws = open(r.i === 1 ? 'evbridge.v1.binary' : 'evbridge.v1.json');
  r.ws = ws;
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      const count = data.readUInt32LE(4);
      let off = 16 + ((data[3] + 7) & ~7);
      for (let k = 0; k < count; k++) {
        const seq = Number(data.readBigUInt64LE(off + 40));
        if (r.next !== undefined && seq < r.next) r.violations++; // filtered by kind: only a repeat or a step back is wrong
        r.next = seq + 1;
        r.events++;
        off += data.readUInt32LE(off);
      }
      return;
    }
    const m = JSON.parse(data);
    if (m.type === 'hello') {
      ws.send(JSON.stringify({ type: 'subscribe', id: 'x', kinds: ['gen'], ...(r.next !== undefined ? { from_seq: r.next, epoch: r.epoch } : {}) }));
      r.epoch = m.epoch;
    } else if (m.type === 'events') {
      for (const e of m.events) {
        if (r.next !== undefined && e.seq < r.next) r.violations++; // as above
        r.next = e.seq + 1;
        r.events++;
      }
    } else if (m.type === 'gap') {
      if (r.next !== undefined && m.from < r.next) r.violations++;
      r.next = m.to + 1;
      r.gaps++;
    }
  });
};
for (const r of resumers) connectResumer(r);
const resumeTimer = setInterval(() => {
  for (const r of resumers) {
    r.ws.terminate();
    r.reconnects++;
    connectResumer(r);
  }
}, 5000);

// Faults and datagrams.
const udp = createSocket('udp4');
const faultTimer = setInterval(async () => {
  const post = (p) => fetch(`http://${base}${p}`, { method: 'POST' }).catch(() => {});
  await post('/debug/panic?count=50');
  for (const f of ['nullEvent', 'oversize', 'badSubject', 'stale', 'late']) await post(`/debug/fault/${f}?count=100`);
  for (let i = 0; i < 20; i++) udp.send(`datagram ${i}`, udpPort, '127.0.0.1');
}, 2000);

// RSS once a minute.
const samples = [];
const t0 = Date.now();
const sample = () => samples.push({ minute: Math.round((Date.now() - t0) / 60000), rss: rss() });
sample();
const rssTimer = setInterval(sample, 60_000);
await new Promise((r) => setTimeout(r, endAt - Date.now()));
sample();
for (const t of [churn, slowTimer, resumeTimer, faultTimer, rssTimer]) clearInterval(t);
for (const ws of sockets) ws.terminate();
udp.close();

// Let the daemon settle, then the counters.
await new Promise((r) => setTimeout(r, 3000));
const m = await metrics();
const callbacks = m.evbridge_callbacks_total;
const accepted = m.evbridge_callbacks_accepted_total;
const outcomes = accepted + sum(m, 'evbridge_callbacks_dropped_total') + sum(m, 'evbridge_callbacks_invalid_total') + m.evbridge_callbacks_stale_total + m.evbridge_callbacks_panicked_total;
// The generator never stops, so the ring is drained up to a moment; compare with what it holds.
const delivered = m.evbridge_events_delivered_total;
const last10 = samples.filter((s) => s.minute >= samples.at(-1).minute - 10);
const drift = last10.length > 1 ? (last10.at(-1).rss - last10[0].rss) / last10[0].rss : 0;
d.kill('SIGTERM');
const code = await new Promise((r) => (exited !== null ? r(exited) : d.once('exit', r)));
const mb = (b) => (b / 1048576).toFixed(1);
const lines = [
  `# Soak: ${minutes} minutes`,
  '',
  `Run on ${new Date().toISOString()}: \`node bench/soak.mjs --minutes ${minutes}\`, on the machine described in bench/RESULTS.md.`,
  '',
  '| minute | RSS (MiB) |',
  '| --- | --- |',
  ...samples.map((s) => `| ${s.minute} | ${mb(s.rss)} |`),
  '',
  `RSS over the last 10 minutes: ${mb(last10[0].rss)} -> ${mb(last10.at(-1).rss)} MiB (${(drift * 100).toFixed(1)} %).`,
  '',
  '| check | result |',
  '| --- | --- |',
  `| daemon never exited during the run | ${exited === null || exited === code ? 'yes' : `no (${exited})`} |`,
  `| callbacks (${callbacks}) = accepted + dropped + invalid + stale + panicked (${outcomes}) | ${callbacks === outcomes ? 'yes' : 'NO'} |`,
  `| accepted (${accepted}) = delivered (${delivered}) + still in the ring (${m.evbridge_ring_used_bytes} bytes) | ${accepted >= delivered && accepted - delivered <= m.evbridge_ring_used_bytes / 64 ? 'yes' : 'NO'} |`,
  `| resumers: sequence violations (repeats, steps back, overlapping gaps) | ${resumers.map((r) => r.violations).join(', ')} |`,
  `| shutdown after the run: exit code | ${code} |`,
  '',
  '| counter | value |',
  '| --- | --- |',
  ...[
    'evbridge_callbacks_total', 'evbridge_callbacks_accepted_total', 'evbridge_callbacks_panicked_total', 'evbridge_callbacks_stale_total', 'evbridge_callbacks_late_total',
    'evbridge_events_delivered_total', 'evbridge_ws_events_sent_total', 'evbridge_panic_log_suppressed_total', 'evbridge_panic_messages_dropped_total',
  ].map((k) => `| \`${k}\` | ${m[k]} |`),
  `| \`evbridge_callbacks_invalid_total\` (all reasons) | ${sum(m, 'evbridge_callbacks_invalid_total')} |`,
  `| \`evbridge_callbacks_dropped_total\` (all reasons) | ${sum(m, 'evbridge_callbacks_dropped_total')} |`,
  ...Object.entries(m).filter(([k, v]) => (k.startsWith('evbridge_ws_events_dropped_total') || k.startsWith('evbridge_ws_disconnects_total')) && v > 0).map(([k, v]) => `| \`${k}\` | ${v} |`),
  `| churned connections | ${churned} |`,
  `| events the 20 readers received | ${readerEvents} |`,
  `| resumers: reconnects, events, gap notices | ${resumers.map((r) => `${r.reconnects}/${r.events}/${r.gaps}`).join(', ')} |`,
  `| daemon log written (info level) | ${mb(logBytes)} MiB |`,
  '',
];
writeFileSync(join(root, 'bench/SOAK.md'), lines.join('\n'));
console.log(lines.join('\n'));
process.exit(0);
