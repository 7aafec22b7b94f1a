// The product's core path, from Node: fetch the Rust callback's address from
// the bridge, register it with the C engine for the generator's kind, and
// read the events in place from the ring, woken by the doorbell.
import t from 'tap';
import { Kind, openNative } from '../daemon/native.js';

t.test('Node registers the Rust callback and drains the ring in place', async (t) => {
  const n = openNative();
  const eng = n.engine.create();
  const bridge = n.bridge.create(1 << 22, 65536, 1_000_000, 1 << Kind.gen);
  t.notOk(n.isNull(bridge), 'bridge created');
  const ring = n.wrap(n.bridge.ringData(bridge), n.bridge.ringCapacity(bridge));
  const result = n.wrap(n.bridge.drainResult(bridge), 32);
  const token = n.bridge.tokenNew(bridge);
  const reg = n.engine.register(eng, n.bridge.callback(), token, 1 << Kind.gen);
  t.ok(reg > 0, 'registered the Rust callback with the engine');

  const threads = 2;
  const perThread = 20_000;
  const lastSeq = new Map<number, bigint>();
  let received = 0;
  let nextSeq = 1;
  let rings = 0;
  let release = () => {};
  let outOfOrder = 0;
  let badPayload = 0;
  const done = new Promise<void>((resolve) => {
    const drainAll = () => {
      for (;;) {
        const count = n.bridge.drain(bridge, 1 << 20, 4096, true);
        if (count === 0) return; // armed: the doorbell brings us back
        let off = Number(result.readBigUInt64LE(0));
        for (let i = 0; i < count; i++) {
          const recLen = ring.readUInt32LE(off);
          const len = ring.readUInt32LE(off + 4);
          const source = ring.readUInt32LE(off + 12);
          const sseq = ring.readBigUInt64LE(off + 24);
          if (Number(ring.readBigUInt64LE(off + 40)) !== nextSeq++) outOfOrder++;
          const prev = lastSeq.get(source);
          if (prev !== undefined && sseq !== prev + 1n) outOfOrder++;
          lastSeq.set(source, sseq);
          if (len !== 64 || ring.readBigUInt64LE(off + 48) !== sseq) badPayload++;
          off += recLen;
        }
        received += count;
        if (received === threads * perThread) resolve();
      }
    };
    release = n.bridge.setDoorbell(bridge, () => {
      rings++;
      drainAll();
    });
    drainAll();
  });
  t.equal(n.engine.addGenerator(eng, threads, 200_000, 64, perThread) >= 0, true, 'generator added');
  t.equal(n.engine.start(eng), 0, 'engine started');
  await done;
  t.equal(received, threads * perThread, 'every event arrived (the ring is large enough for no drops)');
  t.equal(outOfOrder, 0, 'global seq dense, per-source seq in order');
  t.equal(badPayload, 0, 'payloads intact');
  t.ok(rings >= 1, `woken by the doorbell (${rings} times), no polling`);
  t.equal(n.engine.stop(eng), 0);
  t.equal(n.engine.unregister(eng, reg), 0);
  t.equal(n.bridge.tokenRevoke(token), 0);
  n.bridge.free(bridge);
  release(); // after the bridge is gone nothing can ring it
  n.engine.free(eng);
});

t.test('a missing native library is a clear error', async (t) => {
  t.throws(() => openNative({ engine: '/nonexistent/libevengine.so', bridge: '/nonexistent/libevbridge.so' }), {
    name: 'NativeLoadError',
    code: 'EVB_ERR_NATIVE_MISSING',
    message:
      'The native engine library /nonexistent/libevengine.so does not exist. ' +
      'Build it with `npm run build:native` (needs cc, make and cargo), or run `npm install` again.',
  });
});
