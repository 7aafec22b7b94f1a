// SIGTERM mid-stream: stop accepting, drain the ring, flush to clients,
// close them with 1001, log the final counters, exit 0 within 5 s.
import t from 'tap';
import { TestClient, startDaemon } from './helpers/daemon.js';

t.test('SIGTERM mid-stream shuts down cleanly', async (t) => {
  const d = await startDaemon(['--engine-set', 'generator.threads=2', '--engine-set', 'generator.rate=5000', '--engine-set', 'tick.hz=100']);
  const c = await TestClient.connect(d.wsUrl);
  await c.subscribe('all');
  await c.until(() => c.got('all').length > 2000, 10000, 'events flowing');
  const t0 = Date.now();
  const code = await d.stop('SIGTERM');
  const took = Date.now() - t0;
  t.equal(code, 0, 'exit code 0');
  t.ok(took < 5000, `exited within 5 s (${took} ms)`);
  t.equal(await c.closed, 1001, 'client closed with 1001 going away');
  const stopped = await d.waitLog((l) => l.msg === 'evbridge stopped');
  const k = stopped.counters as { callbacks: number; accepted: number; delivered: number; dropped: { ring_full: number }; ringUsedBytes: number };
  t.equal(k.ringUsedBytes, 0, 'ring drained');
  t.equal(k.accepted, k.delivered, 'accepted = delivered: nothing left behind');
  t.equal(k.callbacks, k.accepted + k.dropped.ring_full, 'final counters add up');
  const got = c.got('all');
  t.equal(got.at(-1)?.seq, k.delivered, 'every delivered event reached the client before the close');
  const first = got[0]?.seq ?? 0;
  t.ok(got.every((e, i) => e.seq === first + i), 'contiguous from the subscription on: no gap, no repeat');
  t.ok(d.logs.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'));
});
