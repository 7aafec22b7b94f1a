// Property-based fuzz of client messages against the real daemon, over both
// subprotocols, with events flowing: valid and broken subscribes (ids of
// every length and script, filters, patterns, resume points, formats), unsubscribes,
// garbage text and binary frames. Whatever a client sends, the daemon never
// exits, /healthz (polled from a process of its own) keeps a p95 under 50 ms
// and never takes 100 ms, and a bystander keeps receiving.
import fc from 'fast-check';
import t from 'tap';
import { WebSocket } from 'ws';
import { TestClient, engine, startDaemon, within } from './helpers/daemon.js';
import { responsive, startProber } from './helpers/prober.js';

const id = fc.oneof(
  fc.string({ minLength: 0, maxLength: 70 }),
  fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }),
  fc.constantFrom('a', 'é'.repeat(32), 'é'.repeat(33), '😀'.repeat(16), '😀'.repeat(17), '__proto__', 'constructor'),
);
const token = fc.oneof(fc.string({ minLength: 0, maxLength: 5 }), fc.constantFrom('*', '>', 'md', 'XNAS', 'a b', ''));
const pattern = fc.array(token, { minLength: 1, maxLength: 4 }).map((ts) => ts.join('.'));
const subscribe = fc.record(
  {
    type: fc.constant('subscribe'),
    id,
    kinds: fc.array(fc.oneof(fc.constantFrom('udp', 'tick', 'gen', 'nope', 'GEN', ''), fc.string()), { maxLength: 4 }),
    sources: fc.array(fc.oneof(fc.integer({ min: -2, max: 8 }), fc.double()), { maxLength: 4 }),
    subjects: fc.array(pattern, { maxLength: 4 }),
    from_seq: fc.oneof(fc.integer({ min: -5, max: 2_000_000 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.double()),
    epoch: fc.oneof(fc.string({ maxLength: 70 }), fc.constant('old-epoch')),
    format: fc.oneof(fc.constantFrom('objects', 'rows', 'ROWS', ''), fc.jsonValue()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: ['type'] },
);
const message = fc.oneof(
  { weight: 5, arbitrary: subscribe.map((m) => ({ text: JSON.stringify(m) })) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('unsubscribe'), id }).map((m) => ({ text: JSON.stringify(m) })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ text: JSON.stringify(v) })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((binary) => ({ binary })) },
);

t.test('no sequence of client messages takes the daemon down or stalls it', async (t) => {
  const d = await startDaemon([...engine({ 'generator.threads': 1, 'generator.rate': 20_000, 'generator.subjects': ['md.XNAS.AAPL', 'md.XLON.VOD'] })]);
  t.teardown(() => d.stop());
  const bystander = await TestClient.connect(d.wsUrl);
  await bystander.subscribe('b', { kinds: ['gen'] });
  let runs = 0;
  // Timed by the prober, not here: this process also parses the bystander's
  // 20 k events/s, which would delay its own fetches.
  const prober = await startProber(d.base);
  const fuzzed = fc.assert(
    fc.asyncProperty(fc.constantFrom('evbridge.v1.json', 'evbridge.v1.binary'), fc.array(message, { minLength: 1, maxLength: 30 }), async (protocol, msgs) => {
      const ws = new WebSocket(d.wsUrl, [protocol]);
      ws.on('error', () => {});
      await within(new Promise((r) => ws.once('open', r)), 5000, 'open');
      for (const m of msgs) {
        if (ws.readyState !== WebSocket.OPEN) break; // the daemon may close an abusive client
        if ('binary' in m) ws.send(m.binary, { binary: true });
        else ws.send(m.text);
      }
      const r = await fetch(`${d.base}/healthz`);
      await r.text();
      if (r.status !== 200) throw new Error(`/healthz ${r.status}`);
      if (d.proc.exitCode !== null) throw new Error(`the daemon exited with ${d.proc.exitCode}: ${d.stderr()}`);
      ws.terminate();
      runs++;
    }),
    { numRuns: 150 },
  );
  const probes = await prober.finish(fuzzed);
  t.equal(runs, 150, '150 clients, each with its own message sequence');
  responsive(t, probes, 'while 150 fuzzed clients came and went');
  const before = bystander.got('b').length;
  await bystander.until(() => bystander.got('b').length > before + 1000, 10000, 'the bystander to keep receiving');
  t.equal(d.proc.exitCode, null, 'the daemon runs');
  bystander.ws.close();
});
