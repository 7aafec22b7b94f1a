// The attacks of issue 9, each against the real daemon over real sockets:
// the daemon stays up, other clients are unaffected, the attacker is cut off
// with the documented code, and the counters say what happened.
import { connect } from 'node:net';
import tap from 'tap';
const t = tap;
import { WebSocket } from 'ws';
import { decodeEventsFrame } from '../protocol/binary.js';
import { TestClient, engine, metric, startDaemon, waitMetric, within } from './helpers/daemon.js';
import { responsive, startProber } from './helpers/prober.js';

/** Milliseconds /healthz takes to answer. */
async function healthzMs(base: string): Promise<number> {
  const t0 = performance.now();
  const r = await fetch(`${base}/healthz`);
  await r.text();
  if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
  return performance.now() - t0;
}

/** A bystander that must keep receiving: resolves with how many events it got after `n` more arrived. */
function keepsReceiving(c: TestClient, sub: string, n: number, what: string) {
  const from = c.got(sub).length;
  return c.until(() => c.got(sub).length >= from + n, 15000, `${what}: ${n} more events for the bystander`);
}

t.test('a binary subscription id of 33 two-byte characters is refused at the edge; nobody else notices', async (t) => {
  const d = await startDaemon(engine({ 'tick.hz': 200 }));
  t.teardown(() => d.stop());
  const bystander = await TestClient.connect(d.wsUrl);
  await bystander.subscribe('b');
  const c = await TestClient.connect(d.wsUrl, {}, ['evbridge.v1.binary']);
  c.send({ type: 'subscribe', id: 'é'.repeat(33), from_seq: 1 });
  await c.until(() => c.msgs.some((m) => m.type === 'error'), 5000, 'the error frame');
  t.match(
    c.msgs.find((m) => m.type === 'error'),
    { code: 'bad_message', message: 'Invalid message at "id": must be 1 to 64 bytes of UTF-8' },
  );
  c.send({ type: 'subscribe', id: 'é'.repeat(32), from_seq: 1 });
  await c.until(() => c.msgs.some((m) => m.type === 'binary'), 5000, 'binary events for the 64-byte id');
  await keepsReceiving(bystander, 'b', 20, 'after the attack');
  t.equal(d.proc.exitCode, null, 'the daemon runs');
  c.ws.close();
  bystander.ws.close();
});

t.test('a client that never reads and keeps earning replies is cut off; memory stays bounded', async (t) => {
  // With the default rate limit it is closed with 4010 after 20 frames; with
  // the limit raised, its unread replies reach the queue's hard limit (4008).
  for (const [args, code, reason] of [
    [[], 4010, 'rate_limited'],
    [['--ws-max-subscribes-per-second', '1000000', '--ws-queue-low-watermark-bytes', '65536', '--ws-queue-hard-limit-bytes', '1048576'], 4008, 'slow_consumer'],
  ] as const) {
    const d = await startDaemon([...args, ...engine({ 'tick.hz': 100 })]);
    const bystander = await TestClient.connect(d.wsUrl);
    await bystander.subscribe('b');
    const ws = new WebSocket(d.wsUrl, ['evbridge.v1.json']);
    await within(new Promise((r) => ws.once('open', r)), 5000, 'open');
    ws.pause(); // never reads again
    const closed = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    let sent = 0;
    const pair = '{"type":"subscribe","id":"' + 'x'.repeat(60) + '","kinds":["tick"]}';
    const unpair = '{"type":"unsubscribe","id":"' + 'x'.repeat(60) + '"}';
    // Keep sending until the daemon ends it (our socket stays paused, so we
    // learn of the end only from the metric, then by reading).
    while ((await metric(d.base, 'evbridge_ws_disconnects_total', `reason="${reason}"`)) === 0 && sent < 400_000) {
      for (let i = 0; i < 500; i++) {
        ws.send(pair);
        ws.send(unpair);
      }
      sent += 1000;
      await new Promise((r) => setImmediate(r));
    }
    ws.resume();
    t.equal(await within(closed, 15000, 'the close'), code, `cut off with ${code} (${reason}) after about ${sent} frames`);
    const rss = await metric(d.base, 'evbridge_process_resident_memory_bytes');
    t.ok(rss < 512 * 1024 * 1024, `resident memory ${Math.round(rss / 1048576)} MiB`);
    await keepsReceiving(bystander, 'b', 20, reason);
    bystander.ws.close();
    t.equal(await d.stop(), 0);
  }
});

t.test('the debug endpoints validate names and counts, and sit behind the token and the Origin list', async (t) => {
  const token = 'debug-token-zz9';
  const d = await startDaemon(['--fault-injection', 'true', '--ws-token', token, '--ws-allowed-origins', 'https://ops.example']);
  t.teardown(() => d.stop());
  const post = async (path: string, headers: Record<string, string> = { Authorization: `Bearer ${token}` }) => {
    const r = await fetch(`${d.base}${path}`, { method: 'POST', headers });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  for (const name of ['toString', 'constructor', 'valueOf', '__proto__', 'hasOwnProperty']) {
    const r = await post(`/debug/fault/${name}?count=1`);
    t.equal(r.status, 400, `${name}: 400`);
  }
  t.same(await post('/debug/fault/nullEvent?count=4294967297'), { status: 400, body: { error: 'count must be a whole number from 1 to 1000000' } });
  t.equal((await post('/debug/fault/nullEvent?count=1e21')).status, 400);
  t.equal((await post('/debug/fault/nullEvent?count=0')).status, 400);
  t.equal((await post('/debug/fault/nullEvent?count=-5')).status, 400);
  t.equal((await post('/debug/panic?count=1000001')).status, 400);
  t.same(await post('/debug/fault/nullEvent?count=3', {}), { status: 401, body: { error: 'missing or wrong bearer token' } }, 'no token: 401');
  t.equal((await post('/debug/fault/nullEvent?count=3', { Authorization: `Bearer ${token}`, Origin: 'https://evil.example' })).status, 403, 'a foreign Origin: 403');
  t.same(await post('/debug/fault/nullEvent?count=3'), { status: 200, body: { fault: 'nullEvent', calls: 3 } });
  t.equal(await metric(d.base, 'evbridge_callbacks_invalid_total', 'reason="null_event"'), 3, 'only the authorised request injected');
  // A million injections run off the event loop: /healthz keeps answering.
  const prober = await startProber(d.base);
  const big = post('/debug/fault/late?count=1000000');
  const probes = await prober.finish(big);
  t.same(await big, { status: 200, body: { fault: 'late', calls: 1_000_000 } });
  responsive(t, probes, 'while a million calls were injected');
  t.equal(d.proc.exitCode, null, 'the daemon runs');
  t.notMatch(d.stdout(), token, 'the token appears in no log line');
});

t.test('resume churn is rate-limited, and a resume of the whole window arrives complete without stalling anyone', async (t) => {
  const d = await startDaemon(engine({ 'generator.threads': 1, 'generator.count': 100_000, 'generator.rate': 100_000, 'generator.payloadBytes': 64 }));
  t.teardown(() => d.stop());
  await waitMetric(d.base, 'evbridge_events_delivered_total', '', (v) => v === 100_000, 30000);
  // Churn: 16 subscribes from seq 1 and 16 unsubscribes, 20 times, on one connection.
  const attacker = await TestClient.connect(d.wsUrl);
  const churnProber = await startProber(d.base);
  const churn = (async () => {
    for (let round = 0; round < 20 && attacker.ws.readyState === WebSocket.OPEN; round++) {
      for (let i = 0; i < 16; i++) attacker.send({ type: 'subscribe', id: `c${i}`, from_seq: 1 });
      for (let i = 0; i < 16; i++) attacker.send({ type: 'unsubscribe', id: `c${i}` });
      await new Promise((r) => setImmediate(r));
    }
  })();
  const churnProbes = await churnProber.finish(Promise.all([churn, attacker.closed]));
  t.equal(attacker.closeCode, 4010, 'the churning client is closed with 4010');
  responsive(t, churnProbes, 'during the churn');
  t.equal(await metric(d.base, 'evbridge_callbacks_dropped_total', 'reason="ring_full"'), 0, 'no ring drops for anyone');
  // Readers resuming 100,000 events back (the whole window) get all of them,
  // in both encodings. (The test process decodes binary frames to stay light,
  // so that /healthz timings are the daemon's.)
  for (const encoding of ['evbridge.v1.binary', 'evbridge.v1.json']) {
    const ws = new WebSocket(d.wsUrl, [encoding]);
    const seqs: number[] = [];
    let gaps = 0;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const f = decodeEventsFrame(data);
        if (f.ok) for (const e of f.frame.events) seqs.push(e.seq);
        return;
      }
      const m = JSON.parse(data.toString()) as { type: string; events?: { seq: number }[] };
      if (m.type === 'events') for (const e of m.events ?? []) seqs.push(e.seq);
      if (m.type === 'gap') gaps++;
    });
    await within(new Promise((r) => ws.once('open', r)), 5000, 'open');
    const prober = await startProber(d.base);
    ws.send(JSON.stringify({ type: 'subscribe', id: 'all', from_seq: 1 }));
    const complete = within(
      (async () => {
        while (seqs.length < 100_000) await new Promise((r) => setTimeout(r, 20));
      })(),
      60000,
      'the whole window',
    );
    const resumeProbes = await prober.finish(complete);
    t.equal(seqs.length, 100_000, `${encoding}: every event of the window, none shed`);
    t.ok(seqs.every((s, i) => s === i + 1), `${encoding}: in order, from seq 1`);
    t.equal(gaps, 0, `${encoding}: no gap`);
    responsive(t, resumeProbes, `during the ${encoding} resume`);
    ws.close();
  }
});

t.test('shutdown meets its budget during a heavy resume, and a second signal still logs the counters', async (t) => {
  const d = await startDaemon(['--shutdown-timeout-ms', '3000', ...engine({ 'generator.threads': 1, 'generator.rate': 50_000 })]);
  await waitMetric(d.base, 'evbridge_events_delivered_total', '', (v) => v > 50_000, 20000);
  const readers = await Promise.all([0, 1, 2].map(() => TestClient.connect(d.wsUrl)));
  for (const r of readers) r.send({ type: 'subscribe', id: 'all', from_seq: 1 });
  await readers[0]?.until(() => (readers[0]?.got('all').length ?? 0) > 1000, 10000, 'the resume under way');
  const t0 = Date.now();
  const code = await d.stop('SIGTERM');
  const took = Date.now() - t0;
  t.equal(code, 0, 'exit 0');
  t.ok(took < 3000, `exited within the 3 s budget (${took} ms)`);
  t.ok(d.logs.some((l) => l.msg === 'evbridge stopped'), 'final counters logged');

  // A client that never completes the close handshake holds the graceful
  // shutdown for its budget; a second SIGTERM meanwhile forces the exit.
  const d2 = await startDaemon(['--shutdown-timeout-ms', '8000', ...engine({ 'generator.threads': 1, 'generator.rate': 20_000 })]);
  const stuck = await TestClient.connect(d2.wsUrl);
  await stuck.subscribe('all');
  stuck.ws.pause();
  d2.proc.kill('SIGTERM');
  await d2.waitLog((l) => l.msg === 'shutting down');
  d2.proc.kill('SIGTERM');
  t.equal(await within(d2.exited, 10000, 'the forced exit'), 143, 'the second SIGTERM forces the exit: 143');
  const forced = await d2.waitLog((l) => l.msg === 'second signal: forcing exit');
  t.match(forced.counters, { callbacks: Number, delivered: Number }, 'and logs the counters');
  stuck.ws.terminate();
});

t.test('idle TCP sockets cannot take every file descriptor: the connection cap refuses and counts, timeouts reclaim', async (t) => {
  const d = await startDaemon(['--http-max-connections', '50', '--http-headers-timeout-ms', '1500', '--http-request-timeout-ms', '3000']);
  t.teardown(() => d.stop());
  const idle = await Promise.all(
    Array.from({ length: 200 }, () => new Promise<ReturnType<typeof connect>>((resolve) => {
      const s = connect(d.httpPort, '127.0.0.1', () => resolve(s));
      s.on('error', () => {});
    })),
  );
  const logged = await d.waitLog((l) => l.msg === 'http.maxConnections (50) reached: refusing connections', 5000);
  t.match(logged, { limit: 50 }, 'the limit was logged');
  // The idle ones are closed by the headers timeout; /healthz answers again.
  const t0 = Date.now();
  await within((async () => {
    for (;;) {
      try {
        await healthzMs(d.base);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })(), 10000, '/healthz to answer again');
  t.ok(Date.now() - t0 < 10000, `reclaimed in ${Date.now() - t0} ms`);
  const refused = await metric(d.base, 'evbridge_http_connections_refused_total', 'reason="max_connections"');
  t.ok(refused >= 150, `the 150 idle sockets past the cap were refused and counted (${refused}, with the /healthz probes that found it full)`);
  for (const s of idle) s.destroy();
});

t.test('distinct filters are bounded across connections', async (t) => {
  const d = await startDaemon(['--ws-max-distinct-filters', '4']);
  t.teardown(() => d.stop());
  const a = await TestClient.connect(d.wsUrl);
  const b = await TestClient.connect(d.wsUrl);
  for (let i = 0; i < 4; i++) await a.subscribe(`f${i}`, { sources: [i] });
  await b.subscribe('same', { sources: [0] }); // an existing filter costs nothing more
  b.send({ type: 'subscribe', id: 'new', sources: [9] });
  await b.until(() => b.msgs.some((m) => m.type === 'error'), 5000, 'the refusal');
  t.match(b.msgs.find((m) => m.type === 'error'), { code: 'too_many_filters', id: 'new' });
  t.equal(await metric(d.base, 'evbridge_ws_distinct_filters'), 4);
  a.ws.close();
  await a.closed;
  // The client sees its close before the server has ended the session.
  await waitMetric(d.base, 'evbridge_ws_distinct_filters', '', (v) => v === 1);
  await b.subscribe('now', { sources: [9] });
  t.equal(await metric(d.base, 'evbridge_ws_distinct_filters'), 2, 'filters released when their last subscriber left');
  b.ws.close();
});

t.test('an exception in one session closes that session with 1011 and nothing else', async (t) => {
  const d = await startDaemon(['--fault-injection', 'true', ...engine({ 'tick.hz': 200 })]);
  t.teardown(() => d.stop());
  const victim = await TestClient.connect(d.wsUrl);
  await victim.subscribe('v');
  const r = await fetch(`${d.base}/debug/session-fault?count=1`, { method: 'POST' });
  t.same(await r.json(), { sessionFaults: 1 });
  t.equal(await within(victim.closed, 5000, 'the victim\'s close'), 1011, 'the session that threw is closed with 1011');
  const other = await TestClient.connect(d.wsUrl);
  await other.subscribe('o');
  await keepsReceiving(other, 'o', 20, 'after the fault');
  t.equal(await metric(d.base, 'evbridge_ws_disconnects_total', 'reason="session_error"'), 1, 'counted');
  const logged = await d.waitLog((l) => l.msg === 'WebSocket session failed');
  t.match(logged, { err: { code: 'EVB_ERR_SESSION' } });
  other.ws.close();
});

t.test('a panic storm is counted in full while the log is rate-limited', async (t) => {
  const d = await startDaemon(['--fault-injection', 'true']);
  t.teardown(() => d.stop());
  const t0 = Date.now();
  await fetch(`${d.base}/debug/panic?count=20000`, { method: 'POST' });
  const r = await fetch(`${d.base}/debug/fault/late?count=20000`, { method: 'POST' });
  t.same(await r.json(), { fault: 'late', calls: 20000 });
  t.equal(await waitMetric(d.base, 'evbridge_callbacks_panicked_total', '', (v) => v === 20000), 20000, 'every panic counted');
  // Every message is logged, suppressed by the rate limit, or lost from the
  // bridge's bounded log: three counts kept apart, which add up to the panics.
  const lines = () => d.logs.filter((l) => l.msg === 'native callback panicked').length;
  const account = async () =>
    lines() + (await metric(d.base, 'evbridge_panic_log_suppressed_total')) + (await metric(d.base, 'evbridge_panic_messages_dropped_total'));
  const end = Date.now() + 10000;
  while ((await account()) !== 20000 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  t.equal(await account(), 20000, 'logged + suppressed + lost = every panic');
  t.ok((await metric(d.base, 'evbridge_panic_log_suppressed_total')) > 0, 'the rate limit held some back');
  const seconds = (Date.now() - t0) / 1000;
  t.ok(lines() <= 10 * (Math.ceil(seconds) + 1), `${lines()} panic lines in ${seconds.toFixed(1)} s: at most 10 a second`);
});

t.test('clients that ask for many distinct filters cannot stall the daemon: batches shrink, drops are counted', async (t) => {
  // The attack measured before: 10 connections x 16 distinct filters that all
  // match, in JSON (the costly encoding), offered 1 M events/s: far more than
  // 64 encodings of each can keep up with (the ring drops, asserted below),
  // with the generator paced so that it does not take a whole core of this
  // 2-core machine from the daemon. The clients read without parsing or
  // UTF-8 checks, so that the /healthz timings are the daemon's.
  const d = await startDaemon(engine({ 'generator.threads': 1, 'generator.rate': 1_000_000, 'generator.subjects': ['md.a', 'md.b'] }));
  t.teardown(() => d.stop());
  const answers: Record<string, number>[] = [];
  const sockets = await Promise.all(
    Array.from({ length: 10 }, async (_, ci) => {
      const ws = new WebSocket(d.wsUrl, ['evbridge.v1.json'], { skipUTF8Validation: true }); // reading cheaply: the machine's 2 cores are the daemon's
      const count: Record<string, number> = {};
      answers.push(count);
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        // Parse only {"type":"s(ubscribed)... and {"type":"er(ror)..., never the events.
        if (isBinary || !(data[9] === 0x73 || (data[9] === 0x65 && data[10] === 0x72))) return;
        const m = JSON.parse(data.toString()) as { type: string; code?: string };
        const key = m.type === 'error' ? (m.code ?? 'error') : m.type;
        count[key] = (count[key] ?? 0) + 1;
      });
      await within(new Promise((r) => ws.once('open', r)), 5000, 'open');
      for (let i = 0; i < 16; i++) ws.send(JSON.stringify({ type: 'subscribe', id: `f${i}`, sources: [0, 1000 + ci * 16 + i] })); // distinct, all matching
      return ws;
    }),
  );
  await within(
    (async () => {
      while (answers.reduce((n, c) => n + (c.subscribed ?? 0) + (c.too_many_filters ?? 0), 0) < 160) await new Promise((r) => setTimeout(r, 20));
    })(),
    10000,
    'the 160 answers',
  );
  t.equal(answers.reduce((n, c) => n + (c.too_many_filters ?? 0), 0), 160 - 64, 'past ws.maxDistinctFilters (64) the daemon refuses more');
  const prober = await startProber(d.base);
  responsive(t, await prober.finish(new Promise((r) => setTimeout(r, 4000))), 'with 64 distinct JSON filters matching every event');
  t.ok((await metric(d.base, 'evbridge_callbacks_dropped_total', 'reason="ring_full"')) > 0, 'what the daemon cannot encode in time is dropped at the ring and counted');
  for (const ws of sockets) ws.terminate();
});
