// Daemon-level figures, printed as markdown tables:
//   1. events/s from the engine's generator into the RxJS stream (in process);
//   2. events/s to one WebSocket client, and latency from the engine
//      timestamp to client receipt at 100 k events/s (both sides read
//      CLOCK_MONOTONIC: process.hrtime.bigint() in the client, the engine's
//      ts_ns in the event);
//   3. idle CPU of the default daemon (/proc/PID/stat over 10 s).
// Usage: node bench/daemon/e2e.mjs   (after npm install; run on an idle machine)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { WebSocket } from 'ws';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const { DEFAULTS } = await import(join(root, 'dist/daemon/config.js'));
const { EngineHost } = await import(join(root, 'dist/daemon/engine.js'));
const { openNative } = await import(join(root, 'dist/daemon/native.js'));
const { decodeEventsFrame } = await import(join(root, 'dist/protocol/binary.js'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function intoStream(threads, perThread) {
  const cfg = structuredClone(DEFAULTS);
  cfg.udp.enabled = false;
  cfg.tick.hz = 0;
  cfg.ring.capacityBytes = 64 << 20;
  Object.assign(cfg.generator, { threads, rate: 0, payloadBytes: 64, count: perThread });
  const host = new EngineHost(cfg, openNative(), pino({ level: 'silent' }));
  let n = 0;
  let bytes = 0;
  const total = threads * perThread;
  const t0 = process.hrtime.bigint();
  const done = new Promise((resolve) => {
    host.batches$.subscribe((b) => {
      n += b.count;
      for (let i = 0; i < b.count; i++) bytes += b.payloadLength(i);
      const s = host.stats();
      if (n + s.dropped.ring_full === total) resolve();
    });
  });
  host.start();
  await done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const s = host.close();
  return { threads, total, delivered: n, dropped: s.dropped.ring_full, secs, rate: n / secs };
}

function daemon(args) {
  const p = spawn(process.execPath, [join(root, 'dist/daemon/cli.js'), '--http-port', '0', '--udp-port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.includes('evbridge started'));
      if (line) resolve({ p, info: JSON.parse(line) });
    });
  });
}

async function toClient(rate, seconds, encoding = 'json') {
  const { p, info } = await daemon(['--tick-hz', '0', '--generator-threads', '1', '--generator-rate', String(rate), '--generator-payload-bytes', '64']);
  const ws = new WebSocket(`ws://127.0.0.1:${info.httpPort}/v1/stream`, [`evbridge.v1.${encoding}`]);
  await new Promise((r) => ws.on('open', r));
  let n = 0;
  let gaps = 0;
  const lat = [];
  let measuring = false;
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      if (!measuring) return;
      const r = decodeEventsFrame(data);
      const now = process.hrtime.bigint();
      n += r.frame.events.length;
      for (const e of r.frame.events) lat.push(Number(now - e.tsNs) / 1e3);
      return;
    }
    const m = JSON.parse(data);
    if (m.type === 'gap') gaps += m.dropped;
    if (m.type !== 'events' || !measuring) return;
    const now = process.hrtime.bigint();
    n += m.events.length;
    for (const e of m.events) lat.push(Number(now - BigInt(e.ts)) / 1e3);
  });
  ws.send(JSON.stringify({ type: 'subscribe', id: 'all' }));
  await sleep(1000); // warm-up
  measuring = true;
  const t0 = Date.now();
  await sleep(seconds * 1000);
  measuring = false;
  const secs = (Date.now() - t0) / 1000;
  ws.close();
  p.kill('SIGTERM');
  await new Promise((r) => p.on('exit', r));
  lat.sort((a, b) => a - b);
  const q = (x) => lat[Math.min(lat.length - 1, Math.floor(lat.length * x))]?.toFixed(0);
  return { rate: rate || 'max', encoding, received: n, perSec: n / secs, gaps, p50: q(0.5), p99: q(0.99), p999: q(0.999) };
}

async function idleCpu(seconds) {
  const { p } = await daemon([]);
  const ticks = () => {
    const f = readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks
  };
  await sleep(2000);
  const a = ticks();
  await sleep(seconds * 1000);
  const b = ticks();
  p.kill('SIGTERM');
  await new Promise((r) => p.on('exit', r));
  return ((b - a) / 100 / seconds) * 100; // USER_HZ = 100 on Linux
}

console.log(`evbridge daemon benchmark, ${new Date().toISOString()}, node ${process.version}\n`);
console.log('| generator threads | events | delivered to stream | dropped in ring | seconds | delivered events/s |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const th of [1, 2]) {
  const r = await intoStream(th, 1_000_000);
  console.log(`| ${r.threads} | ${r.total} | ${r.delivered} | ${r.dropped} | ${r.secs.toFixed(2)} | ${(r.rate / 1e6).toFixed(2)} M |`);
}
console.log('\n| encoding | offered events/s | received by 1 client | client events/s | events in gap notices | latency p50 µs | p99 µs | p99.9 µs |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const encoding of ['json', 'binary']) {
  for (const rate of [100_000, 0]) {
    const r = await toClient(rate, 5, encoding);
    console.log(`| ${r.encoding} | ${r.rate} | ${r.received} | ${(r.perSec / 1e3).toFixed(0)} k | ${r.gaps} | ${r.p50} | ${r.p99} | ${r.p999} |`);
  }
}
const cpu = await idleCpu(10);
console.log(`\nidle CPU of the default daemon (UDP + 1 Hz tick, no clients) over 10 s: ${cpu.toFixed(2)} %`);
