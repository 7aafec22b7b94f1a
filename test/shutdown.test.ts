// SIGTERM mid-stream: stop accepting, drain the ring, flush to clients,
// close them with 1001, log the final counters, exit 0 within 5 s.
import t from 'tap';
import { ROOT, TestClient, startDaemon, within } from './helpers/daemon.js';

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

t.test('SIGTERM to `npm start` reaches the daemon: no orphan', async (t) => {
  const { spawn } = await import('node:child_process');
  const npm = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env: { ...process.env, EVBRIDGE_HTTP_PORT: '0', EVBRIDGE_ENGINE_CONFIG: '{"udp":{"port":0},"tick":{"hz":0}}' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const started = within(
    new Promise<number>((resolve) =>
      npm.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /"pid":(\d+)[^\n]*"msg":"evbridge started"/.exec(out);
        if (m) resolve(Number(m[1]));
      }),
    ),
    20000,
    'the daemon to start under npm',
  );
  const pid = await started;
  const npmExit = new Promise<number | null>((r) => npm.once('exit', (code) => r(code)));
  npm.kill('SIGTERM'); // as `kill %1` does to a job started with `npm start &`
  t.equal(await within(npmExit, 10000, 'npm to exit'), 0, 'npm exits 0 after the daemon\'s clean shutdown');
  t.match(out, /"msg":"evbridge stopped"/, 'the daemon shut down gracefully');
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.notOk(alive(), `the daemon (pid ${pid}) is gone`);
});
