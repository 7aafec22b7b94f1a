// Slow consumers: a client that stops reading gets gap notices (and loses
// nothing silently), one that never reads again is disconnected, and a fast
// client next to them receives everything.
import t from 'tap';
import { type ServerMsg, TestClient, metric, startDaemon, waitMetric, within } from './helpers/daemon.js';

/** Walks one subscription's messages in arrival order: events and gap ranges
 * must tile the sequence space with no hole and no repeat. */
function tiling(msgs: ServerMsg[], sub: string) {
  let next: number | undefined;
  let gaps = 0;
  let events = 0;
  for (const m of msgs) {
    if (m.sub !== sub) continue;
    if (m.type === 'gap') {
      if (next !== undefined && m.from !== next) return { ok: false, why: `gap starts at ${m.from}, expected ${next}` };
      if (m.reason !== 'slow_consumer' || (m.to as number) < (m.from as number)) return { ok: false, why: `bad gap ${JSON.stringify(m)}` };
      next = (m.to as number) + 1;
      gaps++;
    } else if (m.type === 'events') {
      for (const e of m.events as { seq: number }[]) {
        if (next !== undefined && e.seq !== next) return { ok: false, why: `event ${e.seq}, expected ${next}` };
        next = e.seq + 1;
        events++;
      }
    }
  }
  return { ok: true, why: '', gaps, events, next };
}

t.test('gap notices, disconnects, and an unaffected fast client', async (t) => {
  const d = await startDaemon([
    // ~20,000 events/s of ~250 B JSON: 5 MB/s. For a client that stops
    // reading, loopback socket buffers absorb ~2 s of that and the 4 MiB send
    // window ~0.8 s more; the 1 MiB watermark then gives ~200 ms before frames
    // are shed. A reading client (the fast one, in this busy test process) has
    // those 200 ms of slack. The pause (5 s) outlasts the ~3 s of absorption,
    // and the stall timeout (8 s) outlasts the pause.
    ...['--engine-set', 'generator.threads=1', '--engine-set', 'generator.rate=20000', '--engine-set', 'generator.payloadBytes=64'],
    ...['--ws-queue-low-watermark-bytes', String(1 << 20), '--ws-queue-hard-limit-bytes', String(64 << 20)],
    ...['--ws-write-stall-timeout-ms', '8000'],
  ]);
  t.teardown(() => d.stop());
  const fast = await TestClient.connect(d.wsUrl);
  const pausing = await TestClient.connect(d.wsUrl);
  const stalled = await TestClient.connect(d.wsUrl);
  t.teardown(() => {
    fast.ws.close();
    pausing.ws.close();
  });
  await fast.subscribe('f');
  await pausing.subscribe('p');
  await stalled.subscribe('s');
  pausing.ws.pause();
  stalled.ws.pause();
  await new Promise((r) => setTimeout(r, 5000)); // the pause itself is the test condition
  pausing.ws.resume();
  await waitMetric(d.base, 'evbridge_ws_disconnects_total', 'reason="write_stall"', (v) => v === 1, 15000);
  stalled.ws.resume(); // a paused socket cannot see its end until it reads again
  t.equal(await within(stalled.closed, 10000, 'the stalled client\'s close'), 4008, 'the stalled client was cut off with 4008');
  const s = tiling(stalled.msgs, 's');
  t.ok(s.ok && (s.gaps ?? 0) >= 1, `the stalled client was told: events and gap notices tile its sequence space up to the close (${s.why})`);
  await pausing.until(() => pausing.msgs.some((m) => m.type === 'gap'), 10000, 'a gap notice');
  await d.waitLog((l) => l.msg === 'disconnecting WebSocket client' && l.reason === 'write_stall');

  const p = tiling(pausing.msgs, 'p');
  t.ok(p.ok, `pausing client: events and gaps tile the sequence space (${p.why})`);
  t.ok((p.gaps ?? 0) >= 1, `gap notices received: ${p.gaps}`);
  const f = tiling(fast.msgs, 'f');
  t.ok(f.ok, `fast client: contiguous (${f.why})`);
  t.equal(f.gaps, 0, 'fast client saw no gap');
  const latest = await metric(d.base, 'evbridge_events_delivered_total');
  await fast.until(() => (fast.got('f').at(-1)?.seq ?? 0) >= latest, 5000, 'fast client to catch up');
  t.ok((f.events ?? 0) > 40000, `fast client kept receiving while others stalled (${f.events} events)`);
  t.ok((await metric(d.base, 'evbridge_ws_events_dropped_total', 'reason="slow_consumer"')) > 0, 'drops counted');
  // The daemon's own account of the stalled session: every event it matched
  // was sent or dropped, and what it sent is what the client received.
  const summary = await d.waitLog((l) => l.msg === 'WebSocket session ended' && l.reason === 'write_stall');
  const subs = summary.subscriptions as { id: string; counts: { matched: number; sent: number; dropped: Record<string, number> } }[];
  const c = subs[0]?.counts;
  t.ok(c, 'the session logged its counts');
  if (c) {
    const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
    t.equal(c.matched, c.sent + dropped, `matched ${c.matched} = sent ${c.sent} + dropped ${dropped}`);
    t.equal(s.events, c.sent, 'the client received every event the daemon counts as sent');
  }
});
