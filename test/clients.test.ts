// The client library and evbridge-sub against the real daemon: resume with
// no silent loss, a daemon restart (new epoch), both encodings side by side.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { firstValueFrom, filter, take, toArray } from 'rxjs';
import { EvbridgeClient, type StreamItem } from '../clients/client.js';
import { ROOT, startDaemon, within } from './helpers/daemon.js';

const SUB = join(ROOT, 'dist', 'clients', 'cli.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Runs evbridge-sub; resolves with its NDJSON events once `stopAfter` lines arrived (then kills it) or it exits. */
function runSub(args: string[], stopAfter?: number): Promise<{ events: { seq: number; epoch: string }[]; stderr: string; code: number | null }> {
  return within(new Promise((resolve) => {
    const p = spawn(process.execPath, [SUB, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const events: { seq: number; epoch: string }[] = [];
    let buf = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
        if (stopAfter !== undefined && events.length === stopAfter) p.kill('SIGKILL');
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ events, stderr, code }));
  }), 60000, `evbridge-sub ${args.join(' ')}`);
}

t.test('evbridge-sub killed mid-stream and restarted from its last seq: every event exactly once', async (t) => {
  const d = await startDaemon(['--engine-set', 'generator.threads=1', '--engine-set', 'generator.rate=5000']);
  t.teardown(() => d.stop());
  const first = await runSub(['--url', d.wsUrl], 3000);
  t.ok(first.events.length >= 3000, `first run printed ${first.events.length} events before SIGKILL`);
  const last = first.events[first.events.length - 1] as { seq: number; epoch: string };
  const second = await runSub(['--url', d.wsUrl, '--from-seq', String(last.seq + 1), '--epoch', last.epoch, '--count', '3000']);
  t.equal(second.code, 0);
  t.equal(second.stderr, '', 'no gap: the window still held the events');
  const seqs = [...first.events, ...second.events].map((e) => e.seq);
  const start = seqs[0] as number;
  t.ok(seqs.every((s, i) => s === start + i), 'contiguous across the restart: no hole, no duplicate');
  t.ok(first.events.every((e) => e.epoch === last.epoch) && second.events.every((e) => e.epoch === last.epoch), 'one epoch');
});

t.test('a from_seq older than the window gets an exact gap, then everything held', async (t) => {
  const d = await startDaemon(['--engine-set', 'generator.threads=1', '--engine-set', 'generator.rate=20000', '--engine-set', 'generator.count=5000', '--replay-max-events', '1000']);
  t.teardown(() => d.stop());
  const r = await runSub(['--url', d.wsUrl, '--from-seq', '1', '--count', '1000']);
  // The generator may still be running while we subscribe; the window holds the newest 1000.
  const gap = JSON.parse(r.stderr.trim()) as { type: string; reason: string; from: number; to: number };
  t.match(gap, { type: 'gap', reason: 'out_of_window', from: 1 });
  t.equal((r.events[0] as { seq: number }).seq, gap.to + 1, 'events resume right after the gap');
  t.ok(r.events.every((e, i) => e.seq === gap.to + 1 + i), 'then contiguous');
});

t.test('a daemon restart: the client sees the new epoch and a gap notice, never a silent loss', async (t) => {
  const port = await freePort();
  const args = ['--http-port', String(port), '--engine-set', 'tick.hz=50'];
  let d = await startDaemon(args);
  const client = new EvbridgeClient({ url: `ws://127.0.0.1:${port}/v1/stream`, backoff: { initialMs: 50, maxMs: 200 } });
  const items: StreamItem[] = [];
  let onItem = () => {};
  const s = client.subscribe({ kinds: ['tick'] }).subscribe((i) => {
    items.push(i);
    onItem();
  });
  t.teardown(() => s.unsubscribe());
  // Resolves on the item that makes `pred` true (checked as each item arrives).
  const waitFor = (pred: () => boolean, what: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10000);
      onItem = () => {
        if (!pred()) return;
        clearTimeout(timer);
        onItem = () => {};
        resolve();
      };
      onItem();
    });
  await waitFor(() => items.length >= 20, '20 ticks');
  const firstEpoch = (items[0] as { event: { epoch: string } }).event.epoch;
  t.equal(await d.stop(), 0);
  d = await startDaemon(args);
  t.teardown(() => d.stop());
  await waitFor(() => items.some((i) => i.type === 'event' && i.event.epoch !== firstEpoch && i.event.seq > 5), 'events of the new epoch');
  const gapAt = items.findIndex((i) => i.type === 'gap');
  t.ok(gapAt > 0, 'a gap notice arrived');
  const gap = items[gapAt] as { gap: { reason: string; oldEpoch?: string; epoch: string } };
  t.match(gap.gap, { reason: 'new_epoch', oldEpoch: firstEpoch });
  t.not(gap.gap.epoch, firstEpoch, 'the notice names the new epoch');
  t.ok(items.slice(0, gapAt).every((i) => i.type === 'event' && i.event.epoch === firstEpoch), 'before it: old epoch only');
  const after = items.slice(gapAt + 1).filter((i) => i.type === 'event');
  t.ok(after.every((i) => i.type === 'event' && i.event.epoch !== firstEpoch), 'after it: new epoch only');
  t.equal((after[0] as { event: { seq: number } }).event.seq, 1, 'the new epoch is replayed from its first event');
});

t.test('JSON (objects and rows) and binary subscribers receive the same events', async (t) => {
  const d = await startDaemon(['--engine-set', 'generator.threads=2', '--engine-set', 'generator.rate=2000', '--engine-set', 'generator.payloadBytes=100', '--engine-set', 'tick.hz=100']);
  t.teardown(() => d.stop());
  const events = (encoding: 'json' | 'binary', n: number, kinds?: ('gen' | 'tick')[], format?: 'objects' | 'rows') =>
    firstValueFrom(
      new EvbridgeClient({ url: d.wsUrl, encoding, reconnect: false, ...(format ? { format } : {}) })
        .subscribe({ fromSeq: 1, ...(kinds ? { kinds } : {}) })
        .pipe(filter((i): i is Extract<StreamItem, { type: 'event' }> => i.type === 'event'), take(n), toArray()),
    );
  const norm = (e: Extract<StreamItem, { type: 'event' }>['event']) => ({ ...e, payload: Buffer.from(e.payload).toString('hex'), ts: e.ts.toString(), time: 0 });
  const [json, binary, rows] = await Promise.all([events('json', 2000), events('binary', 2000), events('json', 2000, undefined, 'rows')]);
  t.equal(json.length, 2000);
  t.equal(binary.length, 2000);
  t.same(binary.map((i) => norm(i.event)), json.map((i) => norm(i.event)), 'same seq, kind, source, source_seq, ts, payload and epoch');
  t.same(rows.map((i) => i.event), json.map((i) => i.event), 'JSON rows: the same events as JSON objects, time included');
  t.ok(binary.every((i, k) => i.event.time === (json[k] as (typeof json)[number]).event.time), 'wall times are equal: one clock offset, one rounding rule');
  // Filtered: generator events come in runs between ticks, ticks one by one.
  for (const [kind, n] of [['gen', 2000], ['tick', 50]] as const) {
    const [j, b] = await Promise.all([events('json', n, [kind]), events('binary', n, [kind])]);
    t.ok(j.length === n && j.every((i) => i.event.kind === kind), `JSON: ${n} ${kind} events only`);
    t.same(b.map((i) => norm(i.event)), j.map((i) => norm(i.event)), `binary with kinds [${kind}]: the same events`);
  }
});

t.test('evbridge-sub exits non-zero with a clear message on auth failure', async (t) => {
  const d = await startDaemon(['--ws-token', 'right', '--engine-set', 'tick.hz=50']);
  t.teardown(() => d.stop());
  const r = await runSub(['--url', d.wsUrl, '--token', 'wrong']);
  t.equal(r.code, 3);
  t.equal(r.stderr, 'evbridge-sub: evbridge refused the connection: HTTP 401 (missing or wrong token)\n');
  const ok = await runSub(['--url', d.wsUrl, '--token', 'right', '--count', '1']);
  t.equal(ok.code, 0, 'the right token is accepted');
  t.equal(ok.events.length, 1);
  const bad = await runSub(['--kinds', 'Nope']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /"Nope" is not a kind name/);
  const unknown = await runSub(['--url', d.wsUrl, '--token', 'right', '--kinds', 'nope']);
  t.equal(unknown.code, 5, 'the daemon refuses a kind its engine does not have');
  t.equal(unknown.stderr, 'evbridge-sub: evbridge refused the subscription: unknown_kind: The engine has no kind "nope"; its kinds: udp, tick, gen.\n');
});

t.test('evbridge-sub against a stopped daemon says what failed, retries, and gives up after its bound', async (t) => {
  const port = await freePort();
  const t0 = Date.now();
  const r = await runSub(['--url', `ws://127.0.0.1:${port}/v1/stream`, '--give-up-after', '1500']);
  const took = Date.now() - t0;
  t.equal(r.code, 4);
  const lines = r.stderr.trim().split('\n');
  const notices = lines.slice(0, -1).map((l) => JSON.parse(l) as { type: string; message: string });
  t.ok(notices.length >= 2 && notices.every((n) => n.type === 'connect_failed' && n.message.includes('ECONNREFUSED')), `each failed try is reported (${notices.length})`);
  t.match(lines.at(-1), new RegExp(`^evbridge-sub: no connection to ws://127.0.0.1:${port}/v1/stream for 1500 ms \\(\\d+ attempts\\)$`));
  t.ok(took >= 1500 && took < 15000, `gave up after ${took} ms`);
});
