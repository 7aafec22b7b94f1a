// In-process daemon figure: events/s from the engine's generator into the
// RxJS stream (engine plugin -> Rust callback -> ring -> drain -> EventBatch),
// no sockets. Prints one JSON line per generator-thread count.
// Usage: node bench/daemon/stream.mjs [events per thread, default 1000000]
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const { DEFAULTS } = await import(join(root, 'dist/daemon/config.js'));
const { EngineHost } = await import(join(root, 'dist/daemon/engine.js'));
const { RingDrain } = await import(join(root, 'dist/daemon/drain.js'));
const { openNative } = await import(join(root, 'dist/daemon/native.js'));
const perThread = Number(process.argv[2] ?? 1_000_000);

async function intoStream(threads) {
  const cfg = structuredClone(DEFAULTS);
  cfg.engine.config = { udp: { enabled: false }, tick: { hz: 0 }, generator: { threads, rate: 0, payloadBytes: 64, count: perThread } };
  cfg.ring.capacityBytes = 64 << 20;
  const log = pino({ level: 'silent' });
  const native = openNative();
  const host = new EngineHost(cfg, native, log);
  const drain = new RingDrain(host, native, cfg.drain, log);
  let n = 0;
  let bytes = 0;
  const total = threads * perThread;
  const t0 = process.hrtime.bigint();
  const done = new Promise((resolve) => {
    drain.batches$.subscribe((b) => {
      n += b.count;
      for (let i = 0; i < b.count; i++) bytes += b.payloadLength(i); // touch every event
      if (n + host.stats().dropped.ring_full === total) resolve();
    });
  });
  host.start(drain.schedule);
  drain.schedule();
  await done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const s = await host.close(() => drain.finish());
  return { threads, events: total, delivered: n, droppedInRing: s.dropped.ring_full, seconds: secs, eventsPerSecond: n / secs, payloadBytes: bytes };
}

for (const th of [1, 2]) console.log(JSON.stringify(await intoStream(th)));
