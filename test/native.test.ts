// The product's core path, from Node: load the built-in engine plugin through
// the bridge, attach the bridge's callback, and read the events in place
// from the ring, woken by the doorbell. Then the refusals at load: a bridge
// library of the wrong kind, another ABI, or another layout.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { defaultLibraryPaths, layoutDifference, openNative } from '../daemon/native.js';
import { NATIVE_LAYOUT } from '../protocol/layout.js';
import { REC } from '../protocol/records.js';
import { runCli } from './helpers/daemon.js';

t.test('Node loads the plugin through the bridge, attaches the callback and drains the ring in place', async (t) => {
  const n = openNative();
  const threads = 2;
  const perThread = 20_000;
  const cfg = JSON.stringify({ udp: { enabled: false }, tick: { hz: 0 }, generator: { threads, rate: 200_000, count: perThread, subjects: ['a.x', 'a.y'] } });
  const eng = n.engineLoad(defaultLibraryPaths().engine, cfg);
  t.notOk(n.isNull(eng), `plugin loaded: ${n.lastError()}`);
  const desc = JSON.parse(n.engineDescribe(eng)) as { kinds: { name: string; number: number }[] };
  const gen = desc.kinds.find((k) => k.name === 'gen')?.number ?? -1;
  t.equal(gen, 3, 'the plugin declares its kinds');
  // 8 MiB holds every record (40,000 of 120 bytes, 4.8 MB) without a
  // drain, so a stalled test process cannot cause drops. With 4 MiB a stall
  // of about 90 ms could, and the wait for every event would never end (a
  // likely cause of the one hang seen; not reproduced).
  const bridge = n.bridgeNew(1 << 23, 65536, 1_000_000, 1 << gen);
  t.notOk(n.isNull(bridge), 'bridge created');
  const ring = n.wrap(n.ringData(bridge), n.ringCapacity(bridge));
  const result = n.wrap(n.drainResult(bridge), NATIVE_LAYOUT.structs.evb_drain_t.size);
  let received = 0;
  let nextSeq = 1;
  let rings = 0;
  let release = () => {};
  let outOfOrder = 0;
  let badPayload = 0;
  let badSubject = 0;
  const lastSeq = new Map<number, bigint>();
  const done = new Promise<void>((resolve) => {
    const drainAll = () => {
      for (;;) {
        const count = n.drain(bridge, 1 << 20, 4096, true);
        if (count === 0) return; // armed: the doorbell brings us back
        let off = Number(result.readBigUInt64LE(NATIVE_LAYOUT.structs.evb_drain_t.fields.offset[0]));
        for (let i = 0; i < count; i++) {
          const recLen = ring.readUInt32LE(off + REC.recordLen);
          const len = ring.readUInt32LE(off + REC.payloadLen);
          const source = ring.readUInt32LE(off + REC.source);
          const sseq = ring.readBigUInt64LE(off + REC.sourceSeq);
          if (Number(ring.readBigUInt64LE(off + REC.seq)) !== nextSeq++) outOfOrder++;
          const prev = lastSeq.get(source);
          if (prev !== undefined && sseq !== prev + 1n) outOfOrder++;
          lastSeq.set(source, sseq);
          if (len !== 64 || ring.readBigUInt64LE(off + 48) !== sseq) badPayload++;
          const subject = ring.toString('utf8', off + 48 + len, off + 48 + len + ring.readUInt32LE(off + REC.subjectLen));
          if (subject !== (sseq % 2n === 0n ? 'a.x' : 'a.y')) badSubject++;
          off += recLen;
        }
        received += count;
        if (received === threads * perThread) resolve();
      }
    };
    release = n.setDoorbell(bridge, () => {
      rings++;
      drainAll();
    });
    drainAll();
  });
  t.equal(n.engineAttach(eng, bridge), 0, 'the bridge callback is registered for the plugin\'s kinds');
  t.equal(n.engineStart(eng), 0, 'engine started');
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, 30_000)));
  await Promise.race([done, bound]);
  clearTimeout(timer);
  t.equal(received, threads * perThread, `every event arrived within 30 s (the ring holds them all; ${rings} doorbell rings)`);
  t.equal(outOfOrder, 0, 'global seq dense, per-source seq in order');
  t.equal(badPayload, 0, 'payloads intact');
  t.equal(badSubject, 0, 'subjects after the payloads, cycled per thread');
  t.ok(rings >= 1, `woken by the doorbell (${rings} times), no polling`);
  t.equal(n.engineStop(eng), 0);
  t.equal(n.engineDetach(eng), 0);
  n.bridgeFree(bridge);
  release(); // after the bridge is gone nothing can ring it
  n.engineFree(eng);
});

t.test('layoutDifference names the first field that differs', async (t) => {
  t.equal(layoutDifference(NATIVE_LAYOUT, NATIVE_LAYOUT), undefined);
  const changed = JSON.parse(JSON.stringify(NATIVE_LAYOUT)) as { structs: { evb_stats_t: { size: number } } };
  changed.structs.evb_stats_t.size += 8;
  t.same(layoutDifference(changed, NATIVE_LAYOUT), { key: 'structs.evb_stats_t.size', got: String(NATIVE_LAYOUT.structs.evb_stats_t.size + 8), want: String(NATIVE_LAYOUT.structs.evb_stats_t.size) });
});

const dir = mkdtempSync(join(tmpdir(), 'evbridge-native-'));

/** Builds a stand-in libevbridge that reports `abi` and `layout`. */
function fakeBridge(name: string, abi: number, layout: string): string {
  const src = join(dir, `${name}.c`);
  const so = join(dir, `${name}.so`);
  writeFileSync(
    src,
    `#include <stdint.h>\nuint32_t evb_abi_version(void) { return ${abi}u; }\nconst char *evb_layout_json(void) { return ${JSON.stringify(layout)}; }\n`,
  );
  execFileSync('cc', ['-shared', '-fPIC', '-o', so, src]);
  return so;
}

t.test('a bridge library with another struct size or layout constant is refused at start', async (t) => {
  const bigger = JSON.parse(JSON.stringify(NATIVE_LAYOUT)) as { structs: { evb_stats_t: { size: number } }; record_align: number };
  bigger.structs.evb_stats_t.size += 8;
  const so = fakeBridge('bigger-stats', NATIVE_LAYOUT.abi_version, JSON.stringify(bigger));
  const r = await runCli(['--native-bridge-library', so]);
  t.equal(r.code, 1);
  t.equal(
    r.stderr,
    `evbridge: Native layout mismatch: ${so} reports structs.evb_stats_t.size = ${NATIVE_LAYOUT.structs.evb_stats_t.size + 8}; this daemon was built for ${NATIVE_LAYOUT.structs.evb_stats_t.size}. Rebuild the native libraries and the daemon together with \`npm install\`.\n`,
  );
  const align = JSON.parse(JSON.stringify(NATIVE_LAYOUT)) as { record_align: number };
  align.record_align = 32;
  const so2 = fakeBridge('align', NATIVE_LAYOUT.abi_version, JSON.stringify(align));
  const r2 = await runCli(['--native-bridge-library', so2]);
  t.equal(r2.code, 1);
  t.match(r2.stderr, /^evbridge: Native layout mismatch: .* reports record_align = 32; this daemon was built for 64\./);
  const so3 = fakeBridge('abi', NATIVE_LAYOUT.abi_version + 1, JSON.stringify(NATIVE_LAYOUT));
  const r3 = await runCli(['--native-bridge-library', so3]);
  t.equal(r3.code, 1);
  t.equal(
    r3.stderr,
    `evbridge: Native ABI mismatch: ${so3} has ABI version ${NATIVE_LAYOUT.abi_version + 1}; this daemon was built for ${NATIVE_LAYOUT.abi_version}. Rebuild the native libraries and the daemon together with \`npm install\`.\n`,
  );
});

t.test('a bridge library path that is missing, a directory, not a library or not the bridge: one message each', async (t) => {
  const missing = await runCli(['--native-bridge-library', '/nonexistent/libevbridge.so']);
  t.equal(missing.code, 1);
  t.equal(
    missing.stderr,
    'evbridge: The native bridge library /nonexistent/libevbridge.so does not exist. Build it with `npm run build:native` (needs cc, make and cargo), or run `npm install` again.\n',
  );
  const asDir = await runCli(['--native-bridge-library', dir]);
  t.equal(asDir.code, 1);
  t.equal(asDir.stderr, `evbridge: The native bridge library ${dir} is a directory. Set native.bridgeLibrary to the path of libevbridge.so, or leave it empty for the built one.\n`);
  const text = join(dir, 'not-a-library.so');
  writeFileSync(text, 'hello\n');
  const notLib = await runCli(['--native-bridge-library', text]);
  t.equal(notLib.code, 1);
  t.match(notLib.stderr, new RegExp(`^evbridge: The native bridge library ${text} is not a loadable shared library: .+\\n$`));
  t.notMatch(notLib.stderr, /\n\s+at /, 'no stack trace');
  const other = fakeBridge('other', 0, '{}').replace('other.so', 'plain.so');
  writeFileSync(join(dir, 'plain.c'), 'int unrelated(void) { return 1; }\n');
  execFileSync('cc', ['-shared', '-fPIC', '-o', other, join(dir, 'plain.c')]);
  const notBridge = await runCli(['--native-bridge-library', other]);
  t.equal(notBridge.code, 1);
  t.equal(notBridge.stderr, `evbridge: ${other} does not export evb_abi_version(): it is not libevbridge.so.\n`);
});
