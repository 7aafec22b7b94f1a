// Fault injection through the real engine in the running daemon: the
// counters in /metrics are exact and the daemon keeps serving.
import { createSocket } from 'node:dgram';
import t from 'tap';
import { TestClient, metric, startDaemon, waitMetric } from './helpers/daemon.js';

async function post(base: string, path: string): Promise<{ calls?: number; status?: number }> {
  const r = await fetch(`${base}${path}`, { method: 'POST' });
  if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()) as { calls?: number; status?: number };
}

t.test('garbage arguments, stale calls, late events and panics are counted exactly', async (t) => {
  const d = await startDaemon(['--fault-injection', 'true']);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  t.teardown(() => c.ws.close());
  await c.subscribe('all');
  const cases: [string, string, number][] = [
    ['nullEvent', 'null_event', 10],
    ['nullPayload', 'null_payload', 11],
    ['oversize', 'too_long', 12],
    ['unknownKind', 'bad_kind', 13],
    ['badSubject', 'bad_subject', 6],
  ];
  for (const [fault, reason, n] of cases) {
    t.same(await post(d.base, `/debug/fault/${fault}?count=${n}`), { fault, calls: n });
    t.equal(await metric(d.base, 'evbridge_callbacks_invalid_total', `reason="${reason}"`), n, `invalid{${reason}}`);
  }
  t.same(await post(d.base, '/debug/fault/stale?count=14'), { fault: 'stale', calls: 14 });
  t.equal(await metric(d.base, 'evbridge_callbacks_stale_total'), 14, 'stale');
  t.same(await post(d.base, '/debug/fault/late?count=7'), { fault: 'late', calls: 7 });
  t.equal(await metric(d.base, 'evbridge_callbacks_late_total'), 7, 'late');
  t.equal(await metric(d.base, 'evbridge_callback_delay_seconds_bucket', 'le="0.5"'), 0, 'late events are ~1 s old');
  t.equal(await metric(d.base, 'evbridge_callback_delay_seconds_count'), 7, 'only valid events are in the delay histogram');

  t.same(await post(d.base, '/debug/panic?count=3'), { panics: 3, status: 0 });
  await post(d.base, '/debug/fault/late?count=5');
  t.equal(await metric(d.base, 'evbridge_callbacks_panicked_total'), 3, 'panicked');
  const panics = await Promise.all([0, 1, 2].map(() => d.waitLog((l) => l.msg === 'native callback panicked' && l.level === 50)));
  t.equal(panics.length, 3);
  t.equal(d.logs.filter((l) => l.msg === 'native callback panicked').length, 3, 'each panic logged once, at error level');
  t.match(String(panics[0]?.panic), /injected panic/);

  // 7 + 2 accepted late events reach the subscriber; garbage never does.
  await c.until(() => c.got('all').length === 9, 5000, 'the 9 accepted events');
  const total = 10 + 11 + 12 + 13 + 6 + 14 + 7 + 5;
  t.equal(await metric(d.base, 'evbridge_callbacks_total'), total, 'every call counted once, on entry');
  t.equal(await metric(d.base, 'evbridge_events_delivered_total'), 9);
  // The accounting, with callbacks counted apart from their outcomes.
  const sum = async (name: string) =>
    (await (await fetch(`${d.base}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const outcomes =
    (await metric(d.base, 'evbridge_callbacks_accepted_total')) + (await sum('evbridge_callbacks_dropped_total')) + (await sum('evbridge_callbacks_invalid_total')) +
    (await metric(d.base, 'evbridge_callbacks_stale_total')) + (await metric(d.base, 'evbridge_callbacks_panicked_total'));
  t.equal(await metric(d.base, 'evbridge_callbacks_total'), outcomes, 'callbacks = accepted + dropped + invalid + stale + panicked');
  t.equal(await metric(d.base, 'evbridge_engine_injected_total'), total, 'the engine\'s own count of its calls agrees');

  // Still serving: a real datagram flows.
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.send('after the storm', d.udpPort, '127.0.0.1', () => r()));
  sock.close();
  await c.until(() => c.got('all').length === 10, 5000, 'a datagram after the faults');
  t.equal((await fetch(`${d.base}/readyz`)).status, 200);
});

t.test('fault endpoints do not exist unless fault injection is on', async (t) => {
  const d = await startDaemon([]);
  t.teardown(() => d.stop());
  t.equal((await fetch(`${d.base}/debug/panic?count=1`, { method: 'POST' })).status, 404);
});

t.test('overflow: a flooded ring drops and counts, accounting holds', async (t) => {
  const n = 2 * 100_000;
  const d = await startDaemon(['--ring-capacity-bytes', String(1 << 18), '--engine-set', 'generator.threads=2', '--engine-set', 'generator.count=100000', '--drain-batches-per-turn', '1']);
  t.teardown(() => d.stop());
  const dropped = () => metric(d.base, 'evbridge_callbacks_dropped_total', 'reason="ring_full"');
  await waitMetric(d.base, 'evbridge_callbacks_total', '', (v) => v === n, 20000);
  // Wait until the ring is empty, then check callbacks = delivered + dropped.
  await waitMetric(d.base, 'evbridge_ring_used_bytes', '', (v) => v === 0, 10000);
  const final = await metric(d.base, 'evbridge_events_delivered_total');
  t.ok((await dropped()) > 0, 'the 256 KiB ring overflowed');
  t.equal(final + (await dropped()), n, 'callbacks = delivered + dropped');
  t.equal((await fetch(`${d.base}/healthz`)).status, 200, 'still serving');
});
