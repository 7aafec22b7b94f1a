// The session's bounds and accounting, without a daemon and without timing:
// a fake socket whose writes complete only when the test says so, and fake
// timers the test advances by hand.
import pino from 'pino';
import t from 'tap';
import { EventBatch } from '../daemon/batch.js';
import { DEFAULTS } from '../daemon/config.js';
import { KindTable } from '../daemon/engine.js';
import { type Encoding, encodeChunks, useJsonWriter } from '../daemon/fanout/encode.js';
import type { Filter } from '../daemon/fanout/filter.js';
import { CLOSE_GRACE_MS, FilterRegistry, MAX_BAD_FRAMES, OPEN, REPLAY_SLICE_EVENTS, Session, type SessionSocket, type Timers } from '../daemon/fanout/session.js';
import type { DisconnectReason, WsDropReason } from '../daemon/metrics.js';
import { ReplayWindow } from '../daemon/replay.js';
import { encodeRecord } from '../protocol/binary.js';

const KINDS = new KindTable([
  { name: 'udp', number: 1 },
  { name: 'gen', number: 3 },
]);

/** A socket whose writes complete when `complete()` is called. */
class FakeSocket implements SessionSocket {
  readyState = OPEN;
  /** Messages written, in order: text frames parsed, events heads decoded. */
  readonly sent: { text?: Record<string, unknown>; fin?: boolean; bytes: number }[] = [];
  private pending: ((err?: Error | null) => void)[] = [];
  closed: { code: number; reason: string } | undefined;
  terminated = false;
  throwOnSend = false;
  send(data: string | Uint8Array, options: { binary: boolean; fin?: boolean }, cb?: (err?: Error | null) => void) {
    if (this.throwOnSend) throw new Error('the socket blew up');
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    const head = typeof data === 'string' && data.startsWith('{"type":"events"') ? data : undefined;
    if (typeof data === 'string' && !head) this.sent.push({ text: JSON.parse(data) as Record<string, unknown>, bytes });
    else if (typeof data === 'string' && head) this.sent.push({ text: { type: 'events-head', head }, bytes, fin: options.fin });
    else this.sent.push({ bytes, fin: options.fin });
    if (cb) this.pending.push(cb);
  }
  /** Completes the oldest `n` writes (all when omitted), with `err` if given. */
  complete(n = Infinity, err?: Error) {
    const done = this.pending.splice(0, Math.min(n, this.pending.length));
    for (const cb of done) cb(err);
    return done.length;
  }
  get waiting() {
    return this.pending.length;
  }
  close(code: number, reason: string) {
    this.closed = { code, reason };
    this.readyState = 2;
  }
  terminate() {
    this.terminated = true;
    this.readyState = 3;
  }
  /** The text messages of one type. */
  texts(type: string) {
    return this.sent.filter((m) => m.text?.type === type).map((m) => m.text as Record<string, unknown>);
  }
}

/** Timers that run only when the test advances them. */
class FakeTimers implements Timers {
  private t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private deferred: (() => void)[] = [];
  private nextId = 1;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown) {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  defer(fn: () => void) {
    this.deferred.push(fn);
  }
  /** Runs the deferred functions queued so far; returns how many. */
  runDeferred() {
    const d = this.deferred;
    this.deferred = [];
    for (const fn of d) fn();
    return d.length;
  }
  advance(ms: number) {
    this.t += ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      this.timers = this.timers.filter((x) => x !== due);
      due.fn();
    }
  }
}

interface Rig {
  s: Session;
  ws: FakeSocket;
  timers: FakeTimers;
  window: ReplayWindow;
  ended: DisconnectReason[];
  sent: number;
  dropped: Partial<Record<WsDropReason, number>>;
  push(count: number, kind?: number): EventBatch;
  msg(m: object): void;
}

let seq = 1;
function batch(count: number, kind = 3, payload = 100): EventBatch {
  const recs = Array.from({ length: count }, (_, i) =>
    encodeRecord({ seq: seq + i, kind, source: 0, sourceSeq: seq + i, flags: 0, tsNs: 1n, payload: new Uint8Array(payload) }),
  );
  const b = new EventBatch(Buffer.concat(recs), count, seq);
  seq += count;
  return b;
}

function rig(ws: Partial<typeof DEFAULTS.ws> = {}, replay = { maxEvents: 0, maxBytes: 0 }): Rig {
  seq = 1;
  const timers = new FakeTimers();
  const window = new ReplayWindow(replay.maxEvents, replay.maxBytes);
  const sock = new FakeSocket();
  const r: Rig = {
    ws: sock,
    timers,
    window,
    ended: [],
    sent: 0,
    dropped: {},
    s: undefined as unknown as Session,
    push: (count, kind) => {
      const b = batch(count, kind);
      window.push(b);
      last = b.lastSeq;
      r.s.offer(b, (f: Filter, minSeq: number, enc: Encoding) => encodeChunks([{ batch: b, start: 0, end: b.count }], f, minSeq, 32, enc, KINDS));
      return b;
    },
    msg: (m) => r.s.onMessage(Buffer.from(JSON.stringify(m)), false),
  };
  let last = 0;
  r.s = new Session(
    sock,
    {
      cfg: { ...DEFAULTS.ws, batchMaxEvents: 32, ...ws },
      kinds: KINDS,
      window,
      metrics: {
        wsEventsSent: (n: number) => void (r.sent += n),
        wsEventsDropped: (reason: WsDropReason, n: number) => void (r.dropped[reason] = (r.dropped[reason] ?? 0) + n),
        eventAge: () => {},
      },
      log: pino({ level: 'silent' }),
      timers,
      filters: new FilterRegistry(DEFAULTS.ws.maxDistinctFilters),
      epoch: 'e1',
      lastSeq: () => last,
      onEnd: (_s, reason) => void r.ended.push(reason),
    },
    'test:1',
    false,
  );
  return r;
}

/** Sum of a subscription's dropped counts. */
const droppedOf = (c: { dropped: Partial<Record<WsDropReason, number>> }) => Object.values(c.dropped).reduce((a, b) => a + (b ?? 0), 0);

t.test('shedding past the watermark replaces the oldest frames with one gap, in place', async (t) => {
  const r = rig({ queueLowWatermarkBytes: 20_000, queueHardLimitBytes: 120_000 });
  r.msg({ type: 'subscribe', id: 'a' });
  r.ws.complete(); // the reply
  // The first frames fill the send window (50,000 bytes) and wait there; the rest queue up.
  let maxTotal = 0;
  for (let i = 0; i < 400; i++) {
    r.push(10);
    t.ok(r.s.queued <= 20_000 + 4000, `queue held at the watermark (${r.s.queued} bytes)`);
    maxTotal = Math.max(maxTotal, r.s.queued + r.s.inflight);
  }
  t.notOk(r.ws.closed, `a client that reads nothing yet is shed, not cut off: at most ${maxTotal} of 120,000 bytes queued and in flight`);
  t.ok((r.dropped.slow_consumer ?? 0) > 0, 'events were shed and counted');
  // Let everything through, then walk what the client received.
  while (r.ws.complete() > 0) {}
  let next = 1;
  let gaps = 0;
  let events = 0;
  for (const m of r.ws.sent) {
    const g = m.text?.type === 'gap' ? m.text : undefined;
    if (g) {
      t.equal(g.from, next, 'a gap starts where the events stopped');
      t.equal((g.to as number) - (g.from as number) + 1, g.dropped, 'and counts every event in its range');
      next = (g.to as number) + 1;
      gaps++;
    } else if (m.fin === true && m.text === undefined) {
      events += 10; // one events body per chunk of one batch of 10
      next += 10;
    }
  }
  t.equal(gaps, 1, 'one merged gap notice');
  t.equal(next, 4001, 'events and the gap tile every seq');
  const c = r.s.counts()[0]?.counts;
  t.equal(c?.matched, 4000);
  t.equal((c?.sent ?? 0) + droppedOf(c ?? { dropped: {} }), c?.matched, 'matched = sent + dropped');
  t.equal(c?.sent, events, 'sent counts the bodies the socket took');
  t.equal(r.sent, events);
});

t.test('a JSON chunk is written when it is sent: what is shed for a slow consumer is never encoded', async (t) => {
  // A writer that counts the chunks it is asked for and leaves the text to
  // the JavaScript encoder (null), so the bytes stay the reference ones.
  let encoded = 0;
  useJsonWriter(() => (encoded++, null));
  t.teardown(() => useJsonWriter(null));
  const r = rig({ queueLowWatermarkBytes: 20_000, queueHardLimitBytes: 120_000 });
  r.msg({ type: 'subscribe', id: 'a' });
  r.ws.complete(); // the reply
  const bodies = () => r.ws.sent.filter((m) => m.fin === true && m.text === undefined).length;
  for (let i = 0; i < 400; i++) r.push(10);
  t.ok((r.dropped.slow_consumer ?? 0) >= 3000, `most of the 4,000 events were shed (${r.dropped.slow_consumer})`);
  t.equal(encoded, bodies(), `only the ${bodies()} chunks handed to the socket were encoded, of 400 offered`);
  t.ok(r.s.queued > 0 && r.s.queued <= 20_000 + 4000, `the queue, counted before encoding, stays at the watermark (${r.s.queued} bytes)`);
  while (r.ws.complete() > 0) {}
  t.equal(encoded, bodies(), `after the client read everything, still one encoding per chunk sent (${encoded})`);
  t.equal(r.s.queued + r.s.inflight, 0, 'queued and in-flight bytes return to 0');
  const c = r.s.counts()[0]?.counts;
  t.equal((c?.sent ?? 0) + droppedOf(c ?? { dropped: {} }), 4000, 'sent + dropped = every event offered');
  t.equal(c?.sent, encoded * 10, 'every encoded chunk was sent');
});

t.test('bytes in flight are counted in UTF-8 bytes, for an id of 2-byte characters too', async (t) => {
  const r = rig({ queueLowWatermarkBytes: 1 << 20, queueHardLimitBytes: 8 << 20 });
  const id = 'ü'.repeat(32); // 64 bytes, 32 UTF-16 units
  r.msg({ type: 'subscribe', id });
  r.ws.complete(); // the reply
  const before = r.ws.sent.length;
  r.push(10);
  r.push(10);
  const wire = r.ws.sent.slice(before).reduce((a, m) => a + m.bytes, 0);
  t.ok(wire > 0, 'two events messages were handed to the socket');
  t.equal(r.s.inflight, wire, `in flight ${r.s.inflight} bytes = what the socket was handed, heads and bodies (${wire})`);
  r.ws.complete();
  t.equal(r.s.inflight, 0);
});

t.test('control replies count against the limits: a client that sends and never reads is cut off', async (t) => {
  const r = rig({ queueLowWatermarkBytes: 2048, queueHardLimitBytes: 8192, maxSubscribesPerSecond: 1_000_000 });
  // Never complete a write: every reply stays queued or in flight.
  let n = 0;
  while (!r.ws.closed && n < 10_000) {
    r.msg({ type: 'subscribe', id: 'x' });
    r.msg({ type: 'unsubscribe', id: 'x' });
    n++;
  }
  t.ok(n < 200, `cut off after ${n} subscribe/unsubscribe pairs`);
  t.same(r.ws.closed, { code: 4008, reason: 'slow_consumer' });
  t.same(r.ended, ['slow_consumer']);
  t.ok(r.s.queued === 0 && r.s.inflight <= 8192, 'nothing more is queued once it is cut off');
});

t.test('a write stall cuts the client off at its deadline; new writes do not postpone it, completions do', async (t) => {
  // A 1,000-byte send window: after the first frame, the rest queue.
  const r = rig({ writeStallTimeoutMs: 1000, queueLowWatermarkBytes: 1 << 20, queueHardLimitBytes: (1 << 20) + 2000 });
  r.msg({ type: 'subscribe', id: 'a' });
  r.ws.complete();
  r.push(5);
  r.timers.advance(600);
  r.push(5); // a new write is not progress
  r.timers.advance(300);
  t.notOk(r.ws.closed, 'not yet at 900 ms');
  r.ws.complete(1); // progress: one write completed at 900 ms
  r.timers.advance(999);
  t.notOk(r.ws.closed, 'progress at 900 ms moved the deadline to 1900 ms');
  r.push(5);
  r.timers.advance(1);
  t.same(r.ws.closed, { code: 4008, reason: 'write_stall' }, 'cut off at 1900 ms');
  const gaps = r.ws.texts('gap');
  t.equal(gaps.length, 1, 'the client is told about what was queued');
  t.match(gaps[0], { sub: 'a', reason: 'slow_consumer' });
  t.same(r.ended, ['write_stall']);
  r.timers.advance(CLOSE_GRACE_MS);
  t.ok(r.ws.terminated, 'destroyed when the close handshake does not finish');
  // In-flight writes fail: their events count as dropped for the stall.
  r.ws.complete(Infinity, new Error('socket destroyed'));
  const c = r.s.counts()[0]?.counts;
  t.equal((c?.sent ?? 0) + droppedOf(c ?? { dropped: {} }), c?.matched, 'matched = sent + dropped after the cut');
  t.ok((c?.dropped.write_stall ?? 0) > 0, 'dropped by the stall, by reason');
});

t.test('the hard limit cuts a client off when what cannot be shed outgrows it, with gap notices covering every shed and queued range', async (t) => {
  const r = rig({ queueLowWatermarkBytes: 8192, queueHardLimitBytes: 65536, maxSubscribesPerSecond: 1_000_000 });
  r.msg({ type: 'subscribe', id: 'a' });
  r.ws.complete();
  // Events are shed to the watermark, never past the hard limit...
  for (let i = 0; i < 500; i++) r.push(10);
  t.notOk(r.ws.closed, 'events alone are shed, not cut off');
  t.ok((r.dropped.slow_consumer ?? 0) > 0, 'some were shed');
  // ...but replies cannot be shed: requests that earn them, unread, reach it.
  for (let i = 0; i < 5000 && !r.ws.closed; i++) r.msg({ type: i % 2 ? 'unsubscribe' : 'subscribe', id: 'b' });
  t.same(r.ws.closed, { code: 4008, reason: 'slow_consumer' });
  r.ws.complete(); // the close flushes what was in flight ahead of the notices
  const c = r.s.counts().find((x) => x.id === 'a')?.counts;
  t.equal((c?.sent ?? 0) + droppedOf(c ?? { dropped: {} }), c?.matched, 'matched = sent + dropped');
  const gaps = r.ws.texts('gap').filter((g) => g.sub === 'a');
  const covered = gaps.reduce((n, g) => n + (g.dropped as number), 0);
  t.equal(covered, c?.dropped.slow_consumer ?? -1, 'the gap notices account for every event shed or dropped at the cut');
  let next = 1;
  for (const g of gaps) {
    t.ok((g.from as number) >= next, 'gaps in order');
    next = (g.to as number) + 1;
  }
  t.equal(next - 1, c?.matched, 'the last notice reaches the last matched event');
});

t.test('unsubscribing drops what is queued for it, counted as unsubscribed', async (t) => {
  const r = rig({ queueLowWatermarkBytes: 1 << 20, queueHardLimitBytes: 8 << 20 });
  r.msg({ type: 'subscribe', id: 'a' });
  r.ws.complete();
  for (let i = 0; i < 2000; i++) r.push(10);
  r.msg({ type: 'unsubscribe', id: 'a' });
  r.ws.complete();
  while (r.ws.complete() > 0) {}
  const c = r.s.counts()[0]?.counts;
  t.ok((c?.dropped.unsubscribed ?? 0) > 0, 'queued events dropped as unsubscribed');
  t.equal((c?.sent ?? 0) + droppedOf(c ?? { dropped: {} }), c?.matched, 'matched = sent + dropped');
  t.equal(r.ws.texts('unsubscribed').length, 1);
});

t.test('a resume of the whole window is produced in slices as the socket drains, and arrives complete', async (t) => {
  const r = rig({ queueLowWatermarkBytes: 1 << 20, queueHardLimitBytes: 8 << 20 }, { maxEvents: 100_000, maxBytes: 64 << 20 });
  for (let i = 0; i < 50; i++) {
    const b = batch(1000);
    r.window.push(b);
  }
  // 50,000 events held; the daemon's last seq is 50,000.
  const s = new Session(
    r.ws,
    {
      cfg: { ...DEFAULTS.ws, batchMaxEvents: 256 },
      kinds: KINDS,
      window: r.window,
      metrics: { wsEventsSent: () => {}, wsEventsDropped: () => {}, eventAge: () => {} },
      log: pino({ level: 'silent' }),
      timers: r.timers,
      filters: new FilterRegistry(64),
      epoch: 'e1',
      lastSeq: () => 50_000,
      onEnd: () => {},
    },
    'test:2',
    false,
  );
  s.onMessage(Buffer.from(JSON.stringify({ type: 'subscribe', id: 'r', from_seq: 1, epoch: 'e1' })), false);
  t.match(r.ws.texts('subscribed')[0], { next_seq: 50_001, replayed: 50_000 });
  let turns = 0;
  let maxPerTurn = 0;
  let maxInflight = 0;
  for (;;) {
    const before = s.counts()[0]?.counts.matched ?? 0;
    const ran = r.timers.runDeferred();
    const made = (s.counts()[0]?.counts.matched ?? 0) - before;
    maxPerTurn = Math.max(maxPerTurn, made);
    maxInflight = Math.max(maxInflight, s.inflight);
    if (ran) turns++;
    if (!ran && r.ws.complete() === 0) break;
  }
  t.ok(maxInflight <= 4 * 1024 * 1024 + 300_000, `never much more than the 4 MiB send window in flight (${maxInflight} bytes at most)`);
  const c = s.counts()[0]?.counts;
  t.equal(c?.matched, 50_000, 'every held event matched');
  t.equal(c?.sent, 50_000, 'and was sent: nothing shed for a client that reads');
  t.ok(maxPerTurn <= REPLAY_SLICE_EVENTS, `at most ${REPLAY_SLICE_EVENTS} events encoded per turn (max ${maxPerTurn})`);
  t.ok(turns >= 50_000 / REPLAY_SLICE_EVENTS, `${turns} turns of the event loop`);
  t.equal(r.ws.texts('gap').length, 0, 'no gap');
});

t.test('a resume that falls behind the window gets an out_of_window gap and goes on from the oldest held', async (t) => {
  const r = rig({ queueLowWatermarkBytes: 1 << 20, queueHardLimitBytes: 8 << 20 }, { maxEvents: 2000, maxBytes: 16 << 20 });
  for (let i = 0; i < 2; i++) r.window.push(batch(1000));
  let last = 2000;
  const s = new Session(
    r.ws,
    {
      cfg: { ...DEFAULTS.ws, batchMaxEvents: 100 },
      kinds: KINDS,
      window: r.window,
      metrics: { wsEventsSent: () => {}, wsEventsDropped: () => {}, eventAge: () => {} },
      log: pino({ level: 'silent' }),
      timers: r.timers,
      filters: new FilterRegistry(64),
      epoch: 'e1',
      lastSeq: () => last,
      onEnd: () => {},
    },
    'test:3',
    false,
  );
  s.onMessage(Buffer.from(JSON.stringify({ type: 'subscribe', id: 'r', from_seq: 1 })), false);
  r.timers.runDeferred(); // the first slice (1,024 events) is encoded
  // 3,000 new events evict everything the slice did not reach.
  for (let i = 0; i < 3; i++) {
    const b = batch(1000);
    r.window.push(b);
    last = b.lastSeq;
  }
  while (r.timers.runDeferred() > 0 || r.ws.complete() > 0) {}
  const gap = r.ws.texts('gap')[0];
  t.match(gap, { reason: 'out_of_window', from: 1025, to: 3000, dropped: null });
  t.equal(s.counts()[0]?.counts.matched, 1024 + 2000, 'then everything from the oldest held on');
});

t.test('an exception while serving the session closes it with 1011 and reaches nothing else', async (t) => {
  const r = rig();
  r.msg({ type: 'subscribe', id: 'a' });
  r.ws.complete();
  r.ws.throwOnSend = true;
  t.doesNotThrow(() => r.push(10), 'the fan-out call returns normally');
  t.same(r.ended, ['session_error']);
  t.ok(r.ws.terminated || r.ws.closed?.code === 1011, 'closed with 1011, or destroyed when even that fails');
});

t.test('too many frames a second: 4010; ten unusable frames in a row: 4009', async (t) => {
  const fast = rig({ maxSubscribesPerSecond: 20 });
  for (let i = 0; i < 21; i++) fast.msg({ type: i % 2 ? 'unsubscribe' : 'subscribe', id: 's' });
  t.equal(fast.ws.texts('error').length, 0, 'each of them a valid frame');
  t.same(fast.ws.closed, { code: 4010, reason: 'rate_limited' });
  t.same(fast.ended, ['rate_limited']);
  const bad = rig();
  for (let i = 0; i < MAX_BAD_FRAMES; i++) bad.s.onMessage(Buffer.from('{not json'), false);
  t.same(bad.ws.closed, { code: 4009, reason: 'protocol_abuse' });
  t.equal(bad.ws.texts('error').length, MAX_BAD_FRAMES, 'each bad frame earned its error, ahead of the close');
});

t.test('the drain batch shrinks with the number of distinct filters', async (t) => {
  const { batchEventsFor } = await import('../daemon/drain.js');
  t.equal(batchEventsFor(4096, 0), 4096);
  t.equal(batchEventsFor(4096, 2), 4096);
  t.equal(batchEventsFor(4096, 4), 2048);
  t.equal(batchEventsFor(4096, 64), 128);
  t.equal(batchEventsFor(4096, 1000), 64, 'never below 64 events');
  t.equal(batchEventsFor(16, 1000), 16, 'nor above the configured maximum');
});

t.test('a sparse filter\'s chunks let go of their batch; dense ones keep it until written', async (t) => {
  const { filterOf } = await import('../daemon/fanout/filter.js');
  const n = 1000;
  const recs = Array.from({ length: n }, (_, i) =>
    encodeRecord({ seq: 1 + i, kind: i === 500 ? 1 : 3, source: 0, sourceSeq: 1 + i, flags: 0, tsNs: BigInt(1000 + i), payload: new Uint8Array(100) }),
  );
  const b = new EventBatch(Buffer.concat(recs), n, 1);
  const udp = filterOf({ type: 'subscribe', id: 'u', kinds: ['udp'] }, KINDS) as Filter;
  const all = filterOf({ type: 'subscribe', id: 'a' }, KINDS) as Filter;
  for (const enc of ['binary', 'json', 'json-rows'] as Encoding[]) {
    const [one, ...rest] = encodeChunks([{ batch: b, start: 0, end: n }], udp, 0, 256, enc, KINDS);
    t.equal(rest.length, 0);
    t.equal(one?.first, 501, `${enc}: the one udp event`);
    t.equal(one?.retainedBytes, one?.body.length, `${enc}: keeps only its own body (${one?.body.length} bytes), not the ${b.byteLength}-byte batch`);
    t.equal(one?.oldestTsNs, 1500, `${enc}: its oldest timestamp was read before letting go`);
    if (enc === 'binary') t.same(one?.body, b.records(500, 501), 'binary: the record itself');
    if (enc === 'binary') t.not(one?.body.buffer, b.bytes.buffer, 'binary: a copy, not a view into the batch');
  }
  const dense = encodeChunks([{ batch: b, start: 0, end: n }], all, 0, 256, 'binary', KINDS);
  t.equal(dense.length, 4);
  t.ok(dense.every((c) => c.retainedBytes === b.byteLength), 'dense binary chunks hold the batch (their bodies are views into it)');
  t.equal(dense.reduce((a, c) => a + c.bytes, 0), b.byteLength, 'and together count all of it');
  const json = encodeChunks([{ batch: b, start: 0, end: n }], all, 0, 256, 'json', KINDS);
  t.equal(json[0]?.retainedBytes, b.byteLength, 'a dense JSON chunk holds the batch until written');
  const body = json[0]?.body as Buffer;
  t.equal(json[0]?.retainedBytes, body.length, 'then only its text');
  t.equal(json[0]?.oldestTsNs, 1000);
  // A subscription that starts near the end of a batch covers little of it.
  const tail = encodeChunks([{ batch: b, start: 0, end: n }], all, 990, 256, 'binary', KINDS);
  t.equal(tail[0]?.first, 990);
  t.equal(tail[0]?.retainedBytes, tail[0]?.bytes, 'the last 11 events of a 1000-event batch: a copy of their own');
});
