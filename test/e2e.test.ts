// End to end on real input: UDP datagrams into the real engine, through the
// Rust bridge, ffi-rs and RxJS, out to WebSocket subscribers.
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import t from 'tap';
import { WebSocket } from 'ws';
import { TestClient, type WireEvent, metric, startDaemon, waitMetric } from './helpers/daemon.js';
import { ROW_FIELDS } from '../protocol/messages.js';

function sendDatagrams(port: number, payloads: Buffer[]): Promise<void> {
  const sock = createSocket('udp4');
  return new Promise((resolve, reject) => {
    let i = 0;
    const next = () => {
      const p = payloads[i++];
      if (!p) {
        sock.close();
        return resolve();
      }
      sock.send(p, port, '127.0.0.1', (err) => (err ? reject(err) : next()));
    };
    next();
  });
}

t.test('datagrams arrive in order, intact, and the metrics agree', async (t) => {
  const d = await startDaemon([]);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  t.teardown(() => c.ws.close());
  t.equal(c.ws.protocol, 'evbridge.v1.json', 'subprotocol echoed');
  await c.until(() => c.msgs.some((m) => m.type === 'hello'));
  t.match(c.msgs[0], { type: 'hello', protocol: 1, encoding: 'json' });
  await c.subscribe('all');

  const payloads: Buffer[] = [Buffer.alloc(0), Buffer.from([0, 255, 1, 254, 0]), Buffer.alloc(60000, 0xab), Buffer.from('hello')];
  for (let i = 0; i < 196; i++) payloads.push(Buffer.from(`datagram ${i} ${'x'.repeat(i)}`));
  // Paced by receipt: UDP may drop a burst in the kernel on a loaded machine,
  // which is not what this test is about.
  for (let i = 0; i < payloads.length; i++) {
    await sendDatagrams(d.udpPort, [payloads[i] as Buffer]);
    await c.until(() => c.got('all').length > i, 10000, `datagram ${i}`);
  }
  const got = c.got('all');
  t.equal(got.length, payloads.length, 'one event per datagram');
  t.ok(got.every((e, i) => i === 0 || e.seq === (got[i - 1] as { seq: number }).seq + 1), 'seq increases by one');
  t.ok(got.every((e, i) => e.source_seq === i && e.kind === 'udp'), 'per-source sequence numbers in order');
  t.ok(
    got.every((e, i) => Buffer.from(e.payload, 'base64').equals(payloads[i] as Buffer)),
    'payloads intact, binary and empty included',
  );
  t.ok(got.every((e) => /^\d+$/.test(e.ts) && Math.abs(e.time - Date.now()) < 60000), 'timestamps: monotonic ns string and wall ms');

  t.equal(await metric(d.base, 'evbridge_callbacks_total'), payloads.length);
  t.equal(await metric(d.base, 'evbridge_events_delivered_total'), payloads.length);
  t.equal(await metric(d.base, 'evbridge_callbacks_dropped_total', 'reason="ring_full"'), 0);
  await waitMetric(d.base, 'evbridge_ws_events_sent_total', '', (v) => v === payloads.length);
  t.equal(await metric(d.base, 'evbridge_ws_connections'), 1);
  t.equal(await metric(d.base, 'evbridge_event_age_seconds_count', 'stage="drain"'), payloads.length);
});

function has(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

t.test('a datagram sent with logger(1) reaches a subscriber', { skip: !has('logger') && 'logger(1) is not installed' }, async (t) => {
  const d = await startDaemon([]);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  t.teardown(() => c.ws.close());
  await c.subscribe('s', { kinds: ['udp'] });
  execFileSync('logger', ['-n', '127.0.0.1', '-P', String(d.udpPort), '-d', 'hello from logger']);
  await c.until(() => c.got('s').length === 1, 5000, 'the logger datagram');
  t.match(Buffer.from((c.got('s')[0] as { payload: string }).payload, 'base64').toString(), /hello from logger/);
});

t.test('filters by kind and by source', async (t) => {
  const d = await startDaemon(['--engine-set', 'tick.hz=200']);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  t.teardown(() => c.ws.close());
  await c.subscribe('udp', { kinds: ['udp'] });
  await c.subscribe('tick', { kinds: ['tick'] });
  await c.subscribe('src0', { sources: [0] }); // the UDP source is added first: id 0
  await c.subscribe('both', { kinds: ['udp', 'tick'] });
  await sendDatagrams(d.udpPort, Array.from({ length: 20 }, (_, i) => Buffer.from(`u${i}`)));
  await c.until(() => c.got('udp').length === 20 && c.got('tick').length >= 20, 10000, '20 udp and 20 tick events');
  t.ok(c.got('udp').every((e) => e.kind === 'udp'), 'kind filter: udp only');
  t.ok(c.got('tick').every((e) => e.kind === 'tick' && e.source === 1), 'kind filter: tick only');
  await c.until(() => c.got('src0').length === 20, 5000, 'source filter');
  t.ok(c.got('src0').every((e) => e.source === 0), 'source filter: source 0 only');
  const both = c.got('both');
  t.ok(both.some((e) => e.kind === 'udp') && both.some((e) => e.kind === 'tick'), 'two kinds in one subscription');
  t.ok(both.every((e, i) => i === 0 || e.seq > (both[i - 1] as { seq: number }).seq), 'merged stream keeps seq order');
});

t.test('a subscription in rows gets the same events as one in objects, live and replayed', async (t) => {
  const d = await startDaemon([]);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  t.teardown(() => c.ws.close());
  await c.subscribe('obj');
  await c.subscribe('row', { format: 'rows' });
  t.match(c.msgs.find((m) => m.type === 'subscribed' && m.id === 'row'), { format: 'rows' }, 'the reply names the format');
  t.match(c.msgs.find((m) => m.type === 'subscribed' && m.id === 'obj'), { format: 'objects' }, 'objects by default');
  const payloads = Array.from({ length: 30 }, (_, i) => Buffer.from(`row ${i} ${'y'.repeat(i * 7)}`));
  for (let i = 0; i < payloads.length; i++) {
    await sendDatagrams(d.udpPort, [payloads[i] as Buffer]);
    await c.until(() => c.got('obj').length > i && c.got('row').length > i, 10000, `datagram ${i} in both`);
  }
  const asRow = (e: WireEvent) => ROW_FIELDS.filter((k) => k in e).map((k) => e[k as keyof WireEvent]);
  const objects = c.got('obj');
  t.same(c.got('row'), objects.map(asRow), 'each row holds the object\'s values in ROW_FIELDS order');
  t.ok(objects.every((e, i) => Buffer.from(e.payload, 'base64').equals(payloads[i] as Buffer)), 'payloads intact');
  // Resumed from the first seq: the replay path writes rows too.
  await c.subscribe('again', { format: 'rows', from_seq: (objects[0] as WireEvent).seq });
  await c.until(() => c.got('again').length === payloads.length, 10000, 'the replayed rows');
  t.same(c.got('again'), objects.map(asRow), 'replayed rows equal the live objects');
  const b = await TestClient.connect(d.wsUrl, {}, ['evbridge.v1.binary']);
  t.teardown(() => b.ws.close());
  b.send({ type: 'subscribe', id: 'x', format: 'rows' });
  await b.until(() => b.msgs.some((m) => m.type === 'error'), 5000, 'an error reply');
  t.match(b.msgs.find((m) => m.type === 'error'), { code: 'bad_message', id: 'x', message: /JSON subprotocol/ }, 'format on the binary subprotocol is refused');
  await b.subscribe('y');
  t.match(b.msgs.find((m) => m.type === 'subscribed' && m.id === 'y'), { format: 'binary' }, 'binary subscriptions say so');
});

t.test('malformed, binary and oversized client frames', async (t) => {
  const d = await startDaemon(['--ws-max-client-frame-bytes', '1024']);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  const errors = () => c.msgs.filter((m) => m.type === 'error');
  c.ws.send('{not json');
  c.send({ type: 'subscribe' });
  c.send({ type: 'subscribe', id: 'a', kinds: ['nope'] });
  c.send({ type: 'unsubscribe', id: 'never' });
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  await c.until(() => errors().length === 5, 5000, 'five error frames');
  t.same(
    errors().map((e) => e.code),
    ['bad_json', 'bad_message', 'unknown_kind', 'unknown_subscription', 'unsupported_frame'],
  );
  t.match(errors()[2], { id: 'a', message: 'The engine has no kind "nope"; its kinds: udp, tick, gen.' }, 'kinds are the engine\'s');
  t.match(errors()[1], { message: /Invalid message at "id"/ });
  await c.subscribe('ok');
  t.match(c.msgs.at(-1), { type: 'subscribed', id: 'ok' }, 'the connection still works after bad frames');
  c.ws.send('x'.repeat(4096));
  t.equal(await c.closed, 1009, 'an oversized frame closes with 1009');
  t.equal((await fetch(`${d.base}/healthz`)).status, 200, 'the daemon keeps serving');
});

t.test('subprotocol negotiation is deliberate', async (t) => {
  const d = await startDaemon([]);
  t.teardown(() => d.stop());
  const plain = await TestClient.connect(d.wsUrl, {}, []);
  t.equal(plain.ws.protocol, '', 'no protocol offered: JSON, no header');
  plain.ws.close();
  const other = new WebSocket(d.wsUrl, ['something.else']);
  const err = await new Promise<Error>((resolve) => other.once('error', resolve));
  t.match(err.message, /subprotocol/i, 'only unknown protocols offered: handshake fails');
});
