// One peer of the callback-path comparison, in its own process:
//   node bench/peers/peer.mjs <evbridge|ffi-rs-void|ffi-rs-int|koffi> <events>
// The same C producer thread (libbenchproducer.so) calls each peer's callback
// with a 64-byte payload. Prints one JSON line: events/s delivered into JS
// (JS read each payload), producer-thread ns per call (p50, p99.9), peak RSS.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const producerPath = join(root, 'native', 'build', 'libbenchproducer.so');
const [peer, nArg] = process.argv.slice(2);
const n = Number(nArg);
let delivered = 0;
let checksum = 0;
let t0 = 0n;
let tLast = 0n;
const rss0 = process.resourceUsage().maxRSS;

async function ffiProducer() {
  const ffi = await import('ffi-rs');
  ffi.open({ library: 'producer', path: producerPath });
  const call = (funcName, retType, paramsType, paramsValue) => ffi.load({ library: 'producer', funcName, retType, paramsType, paramsValue });
  return { ffi, call, done: () => call('bp_done', ffi.DataType.I32, [], []) === 1, pct: (q) => call('bp_pct_ns', ffi.DataType.Double, [ffi.DataType.Double], [q]), elapsed: () => call('bp_elapsed_ns', ffi.DataType.Double, [], []) };
}

const waitUntil = (pred) => new Promise((resolve) => { const t = setInterval(() => { if (pred()) { clearInterval(t); resolve(); } }, 5); });
let result;

if (peer === 'evbridge') {
  const { openNative } = await import(join(root, 'dist/daemon/native.js'));
  const { ffi, call, done, pct, elapsed } = await ffiProducer();
  const nat = openNative();
  const b = nat.bridgeNew(8 << 20, 1024, 1e9, 1 << 3);
  const ring = nat.wrap(nat.ringData(b), nat.ringCapacity(b));
  const res = nat.wrap(nat.drainResult(b), 32);
  const tok = nat.tokenNew(b);
  let draining = false;
  const drain = () => {
    if (draining) return;
    draining = true;
    for (;;) {
      let c = nat.drain(b, 1 << 20, 4096, false);
      if (c === 0) c = nat.drain(b, 1 << 20, 4096, true);
      if (c === 0) break;
      let off = Number(res.readBigUInt64LE(0));
      for (let i = 0; i < c; i++) { checksum += ring[off + 48]; off += ring.readUInt32LE(off); }
      delivered += c;
      tLast = process.hrtime.bigint();
    }
    draining = false;
  };
  nat.setDoorbell(b, drain);
  drain();
  t0 = process.hrtime.bigint();
  call('bp_start_evb', ffi.DataType.I32, [ffi.DataType.External, ffi.DataType.External, ffi.DataType.Double], [nat.callback(), tok, n]);
  await waitUntil(() => done());
  drain();
  const { decodeStats } = await import(join(root, 'dist/daemon/engine.js'));
  const { NATIVE_LAYOUT } = await import(join(root, 'dist/protocol/layout.js'));
  const s = decodeStats(nat.wrap(nat.stats(b), NATIVE_LAYOUT.structs.evb_stats_t.size));
  result = { dropped: s.dropped.ring_full, overload: 'drops counted in the ring; producer never waits', p50: pct(0.5), p999: pct(0.999), producerSeconds: elapsed() / 1e9 };
} else if (peer === 'ffi-rs-void' || peer === 'ffi-rs-int') {
  const { ffi, call, done, pct, elapsed } = await ffiProducer();
  const returnsInt = peer === 'ffi-rs-int';
  const type = ffi.funcConstructor({ paramsType: [ffi.DataType.Double, ffi.arrayConstructor({ type: ffi.DataType.U8Array, length: 64 })], retType: returnsInt ? ffi.DataType.I32 : ffi.DataType.Void });
  const fn = (seq, payload) => { checksum += payload[1]; delivered++; tLast = process.hrtime.bigint(); return returnsInt ? 0 : undefined; };
  const holder = ffi.createPointer({ paramsType: [type], paramsValue: [fn] });
  t0 = process.hrtime.bigint();
  call('bp_start_arr', ffi.DataType.I32, [ffi.DataType.External, ffi.DataType.I32, ffi.DataType.Double], [ffi.unwrapPointer(holder)[0], returnsInt ? 1 : 0, n]);
  await waitUntil(() => done() && delivered >= n);
  result = { dropped: 0, overload: returnsInt ? 'producer blocked until JS returns' : 'unbounded queue: memory grows, nothing counted', p50: pct(0.5), p999: pct(0.999), producerSeconds: elapsed() / 1e9 };
  ffi.freePointer({ paramsType: [type], paramsValue: holder, pointerType: ffi.PointerType.RsPointer });
} else if (peer === 'koffi') {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load(producerPath);
  const proto = koffi.proto('int evb_bench_cb(double seq, const uint8_t *payload, int len)');
  const start = lib.func('int bp_start_ptr_len(evb_bench_cb *cb, double n)');
  const done = lib.func('int bp_done(void)');
  const pct = lib.func('double bp_pct_ns(double)');
  const elapsed = lib.func('double bp_elapsed_ns(void)');
  const cb = koffi.register((seq, payload, len) => { checksum += koffi.decode(payload, 'uint8_t', len)[1]; delivered++; tLast = process.hrtime.bigint(); return 0; }, koffi.pointer(proto));
  t0 = process.hrtime.bigint();
  start(cb, n);
  await waitUntil(() => done() === 1 && delivered >= n);
  result = { dropped: 0, overload: 'producer blocked until JS returns', p50: pct(0.5), p999: pct(0.999), producerSeconds: elapsed() / 1e9 };
  koffi.unregister(cb);
} else {
  console.error(`unknown peer ${peer}`);
  process.exit(2);
}
const secs = Number(tLast - t0) / 1e9;
console.log(JSON.stringify({ peer, events: n, delivered, eventsPerSecond: delivered / secs, ...result, peakRssKiB: process.resourceUsage().maxRSS, rssGrowthKiB: process.resourceUsage().maxRSS - rss0, checksum }));
process.exit(0);
