// Scale-out through NATS JetStream (issue 14), against real nats-server
// processes: a three-node cluster with an R3 stream, one ingest and two
// edges; a NATS node killed and restarted; the ingest killed and restarted;
// every NATS server gone for 10 s.
import { existsSync } from 'node:fs';
import t from 'tap';
import { EvbridgeClient, type StreamItem } from '../clients/client.js';
import { type RunningDaemon, TestClient, engine, metric, startDaemon, waitMetric, within } from './helpers/daemon.js';
import { NATS_SERVER, type NatsNode, startNats, stopNats } from './helpers/nats.js';

const skip = !existsSync(NATS_SERVER) && `${NATS_SERVER} is missing (.ci/run installs Debian package nats-server)`;

const natsFlags = (nodes: NatsNode[], extra: string[] = []) => ['--nats-servers', nodes.map((n) => n.url).join(','), ...extra];
const ingest = (nodes: NatsNode[], gen: Record<string, unknown>, extra: string[] = []) =>
  startDaemon([...natsFlags(nodes, extra), ...engine({ 'generator.threads': 1, 'generator.payloadBytes': 64, ...gen })]);
const edge = (nodes: NatsNode[], extra: string[] = []) => startDaemon(['--role', 'edge', ...natsFlags(nodes), ...extra]);

/** Waits until /readyz says ready. */
async function ready(d: RunningDaemon, ms = 20000) {
  const end = Date.now() + ms;
  while ((await fetch(`${d.base}/readyz`)).status !== 200) {
    if (Date.now() > end) throw new Error(`${d.base} not ready in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Seqs are exactly 1..n, in order. */
function dense(seqs: number[], n: number): boolean {
  return seqs.length === n && seqs.every((s, i) => s === i + 1);
}

t.test('R3 cluster, one ingest, two edges: every event on each edge, in order; a client resumes on the other edge exactly once', { skip }, async (t) => {
  const nodes = await startNats(3);
  t.teardown(() => stopNats(nodes));
  const N = 100_000;
  const ing = await ingest(nodes, { 'generator.rate': 20_000, 'generator.count': N }, ['--nats-replicas', '3']);
  t.teardown(() => ing.stop());
  const [a, b] = await Promise.all([edge(nodes), edge(nodes)]);
  t.teardown(() => a?.stop());
  t.teardown(() => b?.stop());
  await Promise.all([ready(a as RunningDaemon), ready(b as RunningDaemon)]);
  const ea = await TestClient.connect((a as RunningDaemon).wsUrl);
  const eb = await TestClient.connect((b as RunningDaemon).wsUrl);
  t.teardown(() => (ea.ws.close(), eb.ws.close()));
  await ea.subscribe('all', { from_seq: 1 });
  await eb.subscribe('all', { from_seq: 1 });
  const hello = ea.msgs[0] as unknown as { epoch: string; engine: { name: string } };
  t.equal(hello.engine.name, 'evengine', 'the edge states the ingest\'s engine');
  t.equal(hello.epoch, (eb.msgs[0] as unknown as { epoch: string }).epoch, 'both edges state the ingest\'s epoch');

  // A third client reads from edge A, is cut off midway and resumes on edge B.
  const mover = await TestClient.connect((a as RunningDaemon).wsUrl);
  await mover.subscribe('m', { from_seq: 1 });
  await mover.until(() => mover.got('m').length >= 30_000, 60000, '30,000 events on edge A');
  mover.ws.terminate();
  const firstPart = mover.got('m').map((e) => e.seq);
  const last = firstPart.at(-1) as number;
  const moved = await TestClient.connect((b as RunningDaemon).wsUrl);
  t.teardown(() => moved.ws.close());
  await moved.subscribe('m', { from_seq: last + 1, epoch: hello.epoch } as never);

  await ea.until(() => ea.got('all').length >= N, 90000, `${N} events on edge A`);
  await eb.until(() => eb.got('all').length >= N, 90000, `${N} events on edge B`);
  await moved.until(() => (moved.got('m').at(-1)?.seq ?? 0) >= N, 90000, 'the rest on edge B');
  t.ok(dense(ea.got('all').map((e) => e.seq), N), `edge A: ${ea.got('all').length} events, seq 1..${N} dense and in order`);
  t.ok(dense(eb.got('all').map((e) => e.seq), N), `edge B: ${eb.got('all').length} events, seq 1..${N} dense and in order`);
  t.ok(ea.got('all').every((e) => e.kind === 'gen' && e.payload.length > 0), 'kinds and payloads intact');
  const resumed = [...firstPart, ...moved.got('m').map((e) => e.seq)];
  t.ok(dense(resumed, N), `moved client: ${firstPart.length} on A then ${moved.got('m').length} on B, every seq exactly once`);
  t.notOk([...ea.msgs, ...eb.msgs, ...moved.msgs].some((m) => m.type === 'gap'), 'no gap anywhere');
  t.equal(await metric(ing.base, 'evbridge_nats_published_events_total'), N, 'ingest: every event published');
  t.equal(await metric(ing.base, 'evbridge_events_delivered_total'), N, 'ingest: every event drained');
  for (const [name, d] of [['A', a], ['B', b]] as const) {
    t.equal(await metric((d as RunningDaemon).base, 'evbridge_edge_events_total'), N, `edge ${name}: read every event`);
    t.equal(await metric((d as RunningDaemon).base, 'evbridge_edge_gap_events_total'), 0, `edge ${name}: no gap`);
  }
});

t.test('a NATS node killed mid-stream and restarted: nothing lost, nothing twice', { skip }, async (t) => {
  const nodes = await startNats(3);
  t.teardown(() => stopNats(nodes));
  const N = 60_000;
  const ing = await ingest(nodes, { 'generator.rate': 10_000, 'generator.count': N }, ['--nats-replicas', '3']);
  t.teardown(() => ing.stop());
  // The node the ingest is connected to is the one killed; the edge reads from the others.
  const at = (await ing.waitLog((l) => l.msg === 'NATS connected')).server as string;
  const victim = nodes.find((n) => at.endsWith(`:${n.port}`)) as NatsNode;
  t.ok(victim, `the ingest is connected to ${at}`);
  const e = await edge(nodes.filter((n) => n !== victim));
  t.teardown(() => e.stop());
  await ready(e);
  const c = await TestClient.connect(e.wsUrl);
  t.teardown(() => c.ws.close());
  await c.subscribe('all', { from_seq: 1 });
  await c.until(() => c.got('all').length >= 15_000, 60000, '15,000 events');
  await victim.kill();
  await c.until(() => c.got('all').length >= 30_000, 60000, '30,000 events with that node down').catch(async (err) => {
    const text = async (d: RunningDaemon) => (await (await fetch(`${d.base}/metrics`)).text()).split('\n').filter((l) => /^evbridge_(nats|edge)_/.test(l)).join('\n');
    t.comment(`ingest:\n${await text(ing)}\nedge:\n${await text(e)}\ningest logs:\n${ing.logs.filter((l) => l.level >= 40).map((l) => JSON.stringify(l)).join('\n')}\nedge logs:\n${e.logs.filter((l) => l.level >= 30).slice(-20).map((l) => JSON.stringify(l)).join('\n')}`);
    throw err;
  });
  await victim.start();
  await c.until(() => c.got('all').length >= N, 90000, `all ${N} events`);
  await new Promise((r) => setTimeout(r, 500)); // anything sent twice would arrive now
  t.ok(dense(c.got('all').map((x) => x.seq), N), `${c.got('all').length} events, seq 1..${N} exactly once, in order`);
  t.equal(await metric(ing.base, 'evbridge_nats_published_events_total'), N, 'every event published');
  t.equal(await metric(ing.base, 'evbridge_nats_events_dropped_total', 'reason="queue_full"'), 0, 'none dropped');
  t.ok((await metric(ing.base, 'evbridge_nats_reconnects_total')) >= 1, 'the ingest counted its reconnect');
  t.ok(ing.logs.some((l) => l.msg === 'NATS disconnected; reconnecting'), 'and logged the disconnect');
});

t.test('the ingest killed and restarted: edge clients see a new_epoch gap, never silent loss', { skip }, async (t) => {
  const nodes = await startNats(1);
  t.teardown(() => stopNats(nodes));
  let ing = await ingest(nodes, { 'generator.rate': 2000 });
  const e = await edge(nodes);
  t.teardown(() => e.stop());
  await ready(e);
  const raw = await TestClient.connect(e.wsUrl);
  await raw.subscribe('all');
  await raw.until(() => raw.got('all').length >= 200, 10000, '200 events');
  const items: StreamItem[] = [];
  const sub = new EvbridgeClient({ url: e.wsUrl, backoff: { initialMs: 50, maxMs: 200 } }).subscribe({ kinds: ['gen'] }).subscribe({ next: (i) => items.push(i) });
  t.teardown(() => sub.unsubscribe());
  await within(
    (async () => {
      while (items.length < 100) await new Promise((r) => setTimeout(r, 20));
    })(),
    10000,
    '100 items through the client library',
  );
  ing.proc.kill('SIGKILL');
  await ing.exited;
  ing = await ingest(nodes, { 'generator.rate': 2000 });
  t.teardown(() => ing.stop());
  t.equal(await within(raw.closed, 15000, 'the raw client closed'), 1012, 'a raw client is closed with 1012 at the new epoch');
  await within(
    (async () => {
      while (!items.some((i) => i.type === 'gap' && i.gap.reason === 'new_epoch')) await new Promise((r) => setTimeout(r, 20));
    })(),
    15000,
    'a new_epoch gap',
  );
  const gapAt = items.findIndex((i) => i.type === 'gap');
  const before = items.slice(0, gapAt).filter((i) => i.type === 'event') as { event: { seq: number; epoch: string } }[];
  await within(
    (async () => {
      while (items.slice(gapAt).filter((i) => i.type === 'event').length < 50) await new Promise((r) => setTimeout(r, 20));
    })(),
    15000,
    'events of the new epoch',
  );
  const after = items.slice(gapAt + 1).filter((i) => i.type === 'event') as { event: { seq: number; epoch: string } }[];
  t.ok(before.every((x, i) => i === 0 || x.event.seq === (before[i - 1] as { event: { seq: number } }).event.seq + 1), 'dense before the restart');
  t.not(after[0]?.event.epoch, before[0]?.event.epoch, 'then the new epoch');
  t.equal(after[0]?.event.seq, 1, 'whose seqs start at 1');
  t.equal(await metric(e.base, 'evbridge_edge_epochs_total'), 2, 'the edge served two epochs');
});

t.test('every NATS server gone for 10 s: the ingest stays up, serves its own clients, stays bounded, counts what it could not publish', { skip }, async (t) => {
  const nodes = await startNats(1);
  t.teardown(() => stopNats(nodes));
  const N = 500_000; // 25 s at 20,000 events/s
  const ing = await ingest(nodes, { 'generator.rate': 20_000, 'generator.count': N }, ['--nats-max-pending-bytes', String(1 << 20)]);
  t.teardown(() => ing.stop());
  const own = await TestClient.connect(ing.wsUrl);
  t.teardown(() => own.ws.close());
  await own.subscribe('all');
  await waitMetric(ing.base, 'evbridge_nats_published_events_total', '', (v) => v > 10_000, 20000);
  await (nodes[0] as NatsNode).kill();
  const atKill = own.got('all').length;
  const rss: number[] = [];
  const { readFileSync } = await import('node:fs');
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    rss.push(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${ing.proc.pid}/status`, 'utf8'))?.[1]) / 1024);
  }
  t.equal(ing.proc.exitCode, null, 'the ingest is still running');
  t.ok(own.got('all').length > atKill + 100_000, `its own subscriber kept receiving (${own.got('all').length - atKill} events in the 10 s)`);
  t.ok(Math.max(...rss) < 400, `RSS stayed bounded (${Math.min(...rss).toFixed(0)} to ${Math.max(...rss).toFixed(0)} MiB)`);
  const pendingBytes = await metric(ing.base, 'evbridge_nats_pending_bytes');
  t.ok(pendingBytes <= 1 << 20 && pendingBytes > (1 << 20) / 2, `pending bytes (${pendingBytes}) filled to within nats.maxPendingBytes`);
  const droppedDuring = await metric(ing.base, 'evbridge_nats_events_dropped_total', 'reason="queue_full"');
  t.ok(droppedDuring > 50_000, `${droppedDuring} events that could not be published were counted`);
  await (nodes[0] as NatsNode).start();
  await waitMetric(ing.base, 'evbridge_events_delivered_total', '', (v) => v === N, 60000);
  await waitMetric(ing.base, 'evbridge_nats_pending_messages', '', (v) => v === 0, 60000);
  t.ok(ing.logs.some((l) => l.msg === 'NATS reconnected'), 'the reconnect logged');
  const published = await metric(ing.base, 'evbridge_nats_published_events_total');
  const dropped = await metric(ing.base, 'evbridge_nats_events_dropped_total', 'reason="queue_full"');
  t.equal(published + dropped, N, `every drained event published (${published}) or counted as dropped (${dropped})`);
  // The stream says the same: an edge reads every published event, and
  // the dropped ones as gaps.
  const e = await edge(nodes);
  t.teardown(() => e.stop());
  await ready(e, 60000);
  t.equal(await metric(e.base, 'evbridge_edge_events_total'), published, 'an edge reads every published event');
  t.equal(await metric(e.base, 'evbridge_edge_gap_events_total'), dropped, 'and every dropped one as a gap');
});
