// End-to-end benchmarks of issue 5, parts 2 and 3, as functions for
// bench/run.mjs. Servers: the evbridge daemon (engine generator -> ring ->
// drain -> fan-out) and the naive peer (bench/e2e/naive-peer.mjs). Clients:
// bench/e2e/client.mjs processes, one connection each, forked once as a pool
// and reused.
import { execFileSync, fork, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Forks `n` client processes; each gets `req(msg) -> Promise<reply>`. */
export async function clientPool(n) {
  const pool = [];
  for (let i = 0; i < n; i++) {
    const p = fork(join(root, 'bench/e2e/client.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let next = 0;
    const waiting = new Map();
    p.on('message', (m) => {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.ok) w?.resolve(m);
      else w?.reject(new Error(`client ${i}: ${m.error}`));
    });
    const req = (msg) =>
      new Promise((resolve, reject) => {
        const id = ++next;
        waiting.set(id, { resolve, reject });
        p.send({ ...msg, id });
      });
    pool.push({ p, req });
  }
  await Promise.all(pool.map((c) => c.req({ cmd: 'close' }))); // every process is up
  return { clients: pool, kill: () => pool.forEach((c) => c.p.kill()) };
}

/** Resident set size of a process, KiB: current (VmRSS) and peak (VmHWM). */
export function rssKiB(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const f = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { rss: f('VmRSS'), peak: f('VmHWM') };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

/** CPU time (user + system) of a process, seconds. */
export function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

/** The commit the benchmark runs on (short hash, "+ changes" when the tree
 * differs from it), for the results file. */
export function commitOf() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} + changes` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** Latency p50, p99 and p99.9 (µs) over the clients' reports, their HDR
 * histograms merged. */
export async function mergedQuantiles(reps) {
  await initHdr();
  const total = hdr.build({ useWebAssembly: true, lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  for (const r of reps) {
    const h = hdr.decodeFromCompressedBase64(r.hist, 32, true);
    total.add(h);
    h.destroy();
  }
  const q = quantiles(total);
  total.destroy();
  return q;
}

/** CPU seconds of a process's main thread (the event loop: the drain, the
 * fan-out, the encoders, socket writes), from /proc/PID/task/PID/stat. */
export function mainThreadCpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Seconds a process's main thread has spent runnable but waiting on a run
 * queue, from /proc/PID/task/PID/schedstat (its second field, ns; see the
 * kernel's Documentation/scheduler/sched-stats.rst); null without it. */
export function mainThreadRunqueueSeconds(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return null;
  }
}

function exited(p, ms = 5000) {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    const t = setTimeout(() => (p.kill('SIGKILL'), resolve()), ms);
    p.once('exit', () => (clearTimeout(t), resolve()));
  });
}

/** Starts the daemon with extra CLI flags; resolves once it logs its start. */
/** Starts the daemon; node options for it (a profiler, say) may come from
 * EVB_BENCH_NODE_ARGS, space-separated. */
export function startDaemon(args) {
  const nodeArgs = process.env.EVB_BENCH_NODE_ARGS ? process.env.EVB_BENCH_NODE_ARGS.split(' ') : [];
  const p = spawn(process.execPath, [...nodeArgs, join(root, 'dist/daemon/cli.js'), '--http-port', '0', '--engine-set', 'udp.port=0', '--engine-set', 'tick.hz=0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    p.on('exit', (code) => reject(new Error(`daemon exited with ${code}: ${buf.slice(-500)}`)));
    p.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.includes('evbridge started'));
      if (!line) return;
      const { httpPort } = JSON.parse(line);
      resolve({
        p,
        url: `ws://127.0.0.1:${httpPort}/v1/stream`,
        metrics: async () => parseMetrics(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()),
        status: async () => (await fetch(`http://127.0.0.1:${httpPort}/api/status`)).json(),
        stop: async () => (p.kill('SIGTERM'), exited(p)),
      });
    });
  });
}

/** Starts a peer script of bench/e2e that prints {"port":N} once listening
 * on 127.0.0.1 and starts sending when "go" arrives on stdin. It is stopped
 * with SIGKILL: it has nothing to flush, and a SIGTERM handler would wait
 * behind its backlog. `stderr`: 'ignore' or 'inherit'. */
function startScriptPeer(name, args, stderr) {
  const p = spawn(process.execPath, [join(root, 'bench/e2e', `${name}-peer.mjs`), ...args.map(String)], { stdio: ['pipe', 'pipe', stderr] });
  return new Promise((resolve, reject) => {
    p.on('exit', (code) => reject(new Error(`${name} peer exited with ${code}`)));
    p.stdout.once('data', (d) => {
      const { port } = JSON.parse(String(d).split('\n')[0]);
      resolve({ p, url: `ws://127.0.0.1:${port}/`, go: () => p.stdin.write('go\n'), stop: async () => (p.kill('SIGKILL'), exited(p)) });
    });
  });
}

/** Starts the naive peer producing `rate` events/s for at most `seconds`. */
export const startNaive = (rate, seconds) => startScriptPeer('naive', [rate, seconds], 'ignore');

/** Starts the floor peer (bench/e2e/floor-peer.mjs): paced at `rate`
 * events/s, or as fast as its sockets take them when `rate` is 0, once `go`
 * is called. */
export const startFloor = (rate) => startScriptPeer('floor', [rate], 'inherit');

/** The Centrifugo binary bench/peers/centrifugo.sh builds, or null when it
 * has not been built (the Centrifugo rows are then left out). */
export function centrifugoBinary() {
  const bin = join(root, 'native', 'build', 'centrifugo', 'centrifugo');
  return existsSync(bin) ? bin : null;
}

/** Starts Centrifugo and its publisher (bench/e2e/centrifugo-peer.mjs) at
 * `rate` events/s for at most `seconds`, once `go` is called. */
export function startCentrifugo(rate, seconds) {
  const p = spawn(process.execPath, [join(root, 'bench/e2e/centrifugo-peer.mjs'), centrifugoBinary(), String(rate), String(seconds)], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    p.on('exit', (code) => reject(new Error(`centrifugo peer exited with ${code}`)));
    p.stdout.once('data', (d) => {
      const { port, pid } = JSON.parse(String(d).split('\n')[0]);
      resolve({ p, pid, url: `ws://127.0.0.1:${port}/connection/websocket`, go: () => p.stdin.write('go\n'), stop: async () => (p.kill('SIGTERM'), exited(p)) });
    });
  });
}

/** Prometheus text format -> Map of `name{labels}` -> value (samples only). */
function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

const quantiles = (h) => ({ p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), p999: h.getValueAtPercentile(99.9) });

/**
 * One part-2 case. `server`: 'evbridge' or 'naive'; `encoding` for evbridge
 * clients; `rate`: events/s offered by the C producer; `n` clients measured
 * for `seconds` after `warmup` seconds; `filter` (evbridge: kinds, sources,
 * subjects matching every event) and extra daemon flags are optional.
 * evbridge's generator runs `threads` paced threads (default 1), each
 * offering `rate / threads`. Returns per-client and total delivered
 * events/s, latency quantiles (µs) over every event of every client,
 * sequence violations and the server's peak RSS; for evbridge also what
 * the generator made in the window (`generated`, events/s: callbacks the
 * bridge saw) and what was dropped there (`ringDropped`, `shed`: events).
 */
export async function fanoutCase(pool, { server, encoding = 'json', n, rate, seconds, warmup = 1, filter, daemonArgs = [], threads = 1 }) {
  const budget = warmup + seconds + 30;
  await initHdr();
  const per = Math.round(rate / threads);
  const srv =
    server === 'evbridge'
      ? await startDaemon(['--engine-set', `generator.threads=${threads}`, '--engine-set', `generator.rate=${per}`, '--engine-set', 'generator.payloadBytes=64', '--engine-set', `generator.count=${Math.round(per * budget)}`, ...daemonArgs])
      : server === 'centrifugo'
        ? await startCentrifugo(rate, budget)
        : server === 'floor'
          ? await startFloor(rate)
          : await startNaive(rate, budget);
  const used = pool.clients.slice(0, n);
  await Promise.all(used.map((c) => c.req({ cmd: 'connect', url: srv.url, server: server === 'floor' ? 'evbridge' : server, encoding, filter })));
  srv.go?.(); // the naive peer starts producing once its clients are on
  await sleep(warmup * 1000);
  const m0 = server === 'evbridge' ? await srv.metrics() : null;
  const serverPid = srv.pid ?? srv.p.pid;
  const main0 = mainThreadCpuSeconds(serverPid);
  const wait0 = mainThreadRunqueueSeconds(serverPid);
  const t0 = performance.now();
  await Promise.all(used.map((c) => c.req({ cmd: 'start' })));
  await sleep(seconds * 1000);
  const reps = await Promise.all(used.map((c) => c.req({ cmd: 'stop' })));
  const mainCpu = mainThreadCpuSeconds(serverPid) - main0;
  const wait1 = mainThreadRunqueueSeconds(serverPid);
  const mainWait = wait0 === null || wait1 === null ? null : wait1 - wait0;
  const m1 = server === 'evbridge' ? await srv.metrics() : null;
  const wall = (performance.now() - t0) / 1000;
  const delta = (k) => (m1 ? (m1.get(k) ?? 0) - (m0.get(k) ?? 0) : null);
  const shedKeys = m1 ? [...m1.keys()].filter((k) => k.startsWith('evbridge_ws_events_dropped_total')) : [];
  const peakKiB = rssKiB(serverPid).peak;
  const settle = await Promise.all(used.map((c) => c.req({ cmd: 'settle', lastSeq: 0, timeoutMs: 0 })));
  await Promise.all(used.map((c) => c.req({ cmd: 'close', terminate: true })));
  await srv.stop();
  const q = await mergedQuantiles(reps);
  const perClient = reps.map((r) => r.events / r.seconds).sort((a, b) => a - b);
  return {
    server,
    encoding: server === 'evbridge' || server === 'floor' ? encoding : 'json',
    clients: n,
    offered: rate,
    perClientMedian: perClient[Math.floor(perClient.length / 2)],
    perClientMin: perClient[0],
    total: perClient.reduce((a, b) => a + b, 0),
    ...q,
    violations: settle.reduce((s, r) => s + r.violations, 0),
    /** Centrifugo: events skipped across reconnects (it disconnects a client
     * whose queue passes 1 MiB); 0 for the others. */
    lost: settle.reduce((s, r) => s + (r.lost ?? 0), 0),
    gapEvents: settle.reduce((s, r) => s + r.gapDropped, 0),
    serverPeakMiB: peakKiB / 1024,
    /** Server main-thread CPU per event delivered (summed over clients), µs:
     * start to stop of the clients' window, so about ±10 ms of CPU. */
    mainUsPerEvent: (mainCpu * 1e6) / reps.reduce((a, r) => a + r.events, 0),
    threads: server === 'evbridge' ? threads : null,
    /** Callbacks the bridge saw per second over the window (metrics read
     * just before and after it, so the window is a little longer than the
     * clients'). */
    generated: m1 ? delta('evbridge_callbacks_total') / wall : null,
    ringDropped: m1 ? delta('evbridge_callbacks_dropped_total{reason="ring_full"}') : null,
    shed: m1 ? shedKeys.reduce((a, k) => a + delta(k), 0) : null,
    /** evbridge: the daemon's own event-age histograms over the window
     * (evbridge_event_age_seconds: every drained event, and each sent frame
     * by its oldest event), as the upper bound (µs) of the bucket holding the
     * 99th percentile: how much of the clients' p99 the daemon accounts for. */
    drainAgeP99: m1 ? ageQuantileBound(m0, m1, 'drain', 0.99) : null,
    sendAgeP99: m1 ? ageQuantileBound(m0, m1, 'send', 0.99) : null,
    /** Time the server's main thread was runnable but waiting for a CPU
     * (schedstat), ms per second of the window; null where the kernel does
     * not keep schedstats. */
    mainRunqueueMsPerS: mainWait === null ? null : (mainWait * 1e3) / wall,
  };
}

/** The upper bound (µs) of the evbridge_event_age_seconds bucket holding
 * quantile `q` of the observations made between scrapes `m0` and `m1`, for
 * `stage`; Infinity past the last bound, null with no observations. */
export function ageQuantileBound(m0, m1, stage, q) {
  const rows = [];
  for (const [k, v] of m1) {
    if (!k.startsWith('evbridge_event_age_seconds_bucket{') || !k.includes(`stage="${stage}"`)) continue;
    const le = /le="([^"]+)"/.exec(k)[1];
    rows.push({ le: le === '+Inf' ? Infinity : Number(le), n: v - (m0.get(k) ?? 0) });
  }
  rows.sort((a, b) => a.le - b.le);
  const total = rows.at(-1)?.n ?? 0;
  if (!total) return null;
  const row = rows.find((r) => r.n >= q * total);
  return row.le === Infinity ? Infinity : Math.round(row.le * 1e6);
}

let hdrReady;
function initHdr() {
  hdrReady ??= hdr.initWebAssembly();
  return hdrReady;
}

/**
 * Part 3, overload: `n` clients that each take at most `clientRate`
 * events/s (they pause their socket when ahead), fed `rate` events/s for
 * `seconds`. Samples the server's RSS every second. For evbridge the
 * generator then stops by itself (its count is rate × seconds), every client
 * settles, and the accounting invariant is checked from /metrics and the
 * clients' own counts. The naive peer is stopped early if its RSS passes
 * `rssCapMiB`.
 */
export async function overloadCase(pool, { server, n, rate, clientRate, seconds, rssCapMiB = 4096 }) {
  const count = Math.round(rate * seconds);
  const srv =
    server === 'evbridge'
      ? await startDaemon(['--engine-set', 'generator.threads=1', '--engine-set', `generator.rate=${rate}`, '--engine-set', 'generator.payloadBytes=64', '--engine-set', `generator.count=${count}`])
      : await startNaive(rate, seconds);
  const used = pool.clients.slice(0, n);
  await Promise.all(used.map((c, i) => c.req({ cmd: 'connect', url: srv.url, server, encoding: i % 2 ? 'binary' : 'json', throttle: clientRate })));
  srv.go?.();
  const rss = [];
  const t0 = Date.now();
  let cappedAt;
  while (Date.now() - t0 < seconds * 1000) {
    await sleep(1000);
    const r = rssKiB(srv.p.pid).rss / 1024;
    rss.push({ t: (Date.now() - t0) / 1000, mib: r });
    if (r > rssCapMiB) {
      cappedAt = (Date.now() - t0) / 1000;
      break;
    }
  }
  const out = { server, clients: n, offered: rate, clientRate, seconds, rss, cappedAt };
  if (server === 'evbridge') {
    // The paced generator may lag its schedule on a loaded machine: wait (up
    // to 2 minutes) until the engine's own count says it made all `count`
    // calls, they reached the bridge, and the ring is empty.
    let m = await srv.metrics();
    for (
      let i = 0;
      i < 1200 && (m.get('evbridge_engine_dispatched_total') < count || m.get('evbridge_callbacks_total') < count || m.get('evbridge_ring_used_bytes') > 0);
      i++
    ) {
      await sleep(100);
      m = await srv.metrics();
    }
    const lastSeq = m.get('evbridge_events_delivered_total');
    const settle = await Promise.all(used.map((c) => c.req({ cmd: 'settle', lastSeq, timeoutMs: 30_000 })));
    await sleep(200); // let the last write callbacks count their frames as sent
    m = await srv.metrics();
    const invalid = [...m].filter(([k]) => k.startsWith('evbridge_callbacks_invalid_total')).reduce((s, [, v]) => s + v, 0);
    const a = {
      engineCalls: count,
      callbacks: m.get('evbridge_callbacks_total'),
      delivered: m.get('evbridge_events_delivered_total'),
      ringDropped: m.get('evbridge_callbacks_dropped_total{reason="ring_full"}'),
      invalid,
      stale: m.get('evbridge_callbacks_stale_total'),
      panicked: m.get('evbridge_callbacks_panicked_total'),
      ringUsed: m.get('evbridge_ring_used_bytes'),
      wsSent: m.get('evbridge_ws_events_sent_total'),
      wsDropped: m.get('evbridge_ws_events_dropped_total{reason="slow_consumer"}'),
      disconnects: [...m].filter(([k]) => k.startsWith('evbridge_ws_disconnects_total') && !k.includes('"client"')).reduce((s, [, v]) => s + v, 0),
      clientsReceived: settle.reduce((s, r) => s + r.received, 0),
      clientsGapDropped: settle.reduce((s, r) => s + r.gapDropped, 0),
      clientsExpected: settle.reduce((s, r) => s + (lastSeq - r.firstSeq + 1), 0),
      violations: settle.reduce((s, r) => s + r.violations, 0),
    /** Centrifugo: events skipped across reconnects (it disconnects a client
     * whose queue passes 1 MiB); 0 for the others. */
    lost: settle.reduce((s, r) => s + (r.lost ?? 0), 0),
      unsettled: settle.filter((r) => !r.settled).length,
    };
    a.checks = [
      ['engine calls = callbacks received by the bridge', a.engineCalls === a.callbacks],
      ['callbacks = delivered + dropped + invalid + stale + panicked, ring empty', a.callbacks === a.delivered + a.ringDropped + a.invalid + a.stale + a.panicked && a.ringUsed === 0],
      ['per client: received + in gap notices = every seq since subscribing', a.clientsReceived + a.clientsGapDropped === a.clientsExpected && a.unsettled === 0],
      ['clients saw seqs in order, gaps exactly where notices said', a.violations === 0],
      ['daemon: sent + dropped(slow_consumer) = what clients received + gaps', a.wsSent === a.clientsReceived && a.wsDropped === a.clientsGapDropped],
    ];
    out.accounting = a;
  }
  await Promise.all(used.map((c) => c.req({ cmd: 'close', terminate: true })));
  out.peakMiB = rssKiB(srv.p.pid).peak / 1024;
  await srv.stop();
  return out;
}

/**
 * Cost per distinct filter: `n` clients subscribed with `distinct` different
 * filters that all match every generator event (the generator's source plus
 * a made-up source id per filter), at a fixed offered `rate` below
 * saturation. The daemon encodes each batch once per (filter, encoding), so
 * its CPU time per event grows with `distinct`, not with `n`. Reports the
 * daemon's CPU seconds per second (cores) and per million events offered
 * during the window, per-client events/s, latency and sequence violations.
 */
export async function filtersCase(pool, { n, distinct, rate, seconds, warmup = 1, encoding = 'binary' }) {
  const budget = warmup + seconds + 30;
  await initHdr();
  const srv = await startDaemon(['--engine-set', 'generator.threads=1', '--engine-set', `generator.rate=${rate}`, '--engine-set', 'generator.payloadBytes=64', '--engine-set', `generator.count=${Math.round(rate * budget)}`]);
  const st = await srv.status();
  const gen = st.engine.sources.filter((s) => s.kind === 'gen').map((s) => s.id);
  if (gen.length === 0) throw new Error('the engine has no generator source');
  const used = pool.clients.slice(0, n);
  await Promise.all(used.map((c, i) => c.req({ cmd: 'connect', url: srv.url, server: 'evbridge', encoding, filter: { sources: [...gen, 60000 + (i % distinct)] } })));
  const m0 = await srv.metrics();
  if (m0.get('evbridge_ws_distinct_filters') !== distinct) throw new Error(`expected ${distinct} distinct filters, the daemon counts ${m0.get('evbridge_ws_distinct_filters')}`);
  await sleep(warmup * 1000);
  await Promise.all(used.map((c) => c.req({ cmd: 'start' })));
  const cpu0 = cpuSeconds(srv.p.pid);
  const t0 = Date.now();
  const sent0 = (await srv.metrics()).get('evbridge_ws_events_sent_total');
  await sleep(seconds * 1000);
  const reps = await Promise.all(used.map((c) => c.req({ cmd: 'stop' })));
  const cpu = cpuSeconds(srv.p.pid) - cpu0;
  const wall = (Date.now() - t0) / 1000;
  const m1 = await srv.metrics();
  const settle = await Promise.all(used.map((c) => c.req({ cmd: 'settle', lastSeq: 0, timeoutMs: 0 })));
  await Promise.all(used.map((c) => c.req({ cmd: 'close', terminate: true })));
  await srv.stop();
  const q = await mergedQuantiles(reps);
  const perClient = reps.map((r) => r.events / r.seconds).sort((a, b) => a - b);
  return {
    clients: n,
    distinct,
    offered: rate,
    cores: cpu / wall,
    cpuMsPerMillionOffered: ((cpu * 1e3) / (rate * wall)) * 1e6,
    sentPerSecond: (m1.get('evbridge_ws_events_sent_total') - sent0) / wall,
    perClientMedian: perClient[Math.floor(perClient.length / 2)],
    perClientMin: perClient[0],
    ...q,
    shed: [...m1].filter(([k]) => k.startsWith('evbridge_ws_events_dropped_total{reason="slow_consumer"')).reduce((a, [, v]) => a + v, 0),
    violations: settle.reduce((s, r) => s + r.violations, 0),
    /** Centrifugo: events skipped across reconnects (it disconnects a client
     * whose queue passes 1 MiB); 0 for the others. */
    lost: settle.reduce((s, r) => s + (r.lost ?? 0), 0),
  };
}
