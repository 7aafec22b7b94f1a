// One WebSocket client process for the end-to-end benchmarks (issue 5, parts
// 2 and 3), driven by its parent over the IPC channel (child_process.fork).
//
// Commands (each answered with one message carrying the same `id`):
//   {cmd:'connect', url, server:'evbridge'|'naive'|'centrifugo', encoding:'json'|'json-rows'|'binary', throttle, filter}
//       (centrifugo: the `centrifuge` client library on its JSON protocol,
//       subscribed to the peer's channel; each publication holds many
//       events. A seq that jumps ahead, after Centrifugo disconnected a
//       client that fell behind and the library reconnected, is counted as
//       lost events, not as a violation)
//       ('json-rows': the JSON subprotocol, subscribed with "format": "rows")
//       connects; for evbridge subscribes (to everything, or with `filter`:
//       kinds, sources, subjects, which must still match every event) and answers once
//       `subscribed` arrives. `throttle` > 0 caps intake at that many
//       events/s by pausing the socket (a deliberately slow consumer).
//   {cmd:'start'}  starts a measuring window (resets counters and latencies).
//   {cmd:'stop'}   ends it: events, seconds, latency histogram.
//   {cmd:'settle', lastSeq, timeoutMs}
//       waits until every seq up to lastSeq was received or reported in a gap
//       notice; answers with the whole-subscription accounting.
//   {cmd:'close', terminate}  closes the socket (at once, without the
//       closing handshake, when `terminate`: a backlogged client would
//       otherwise read its whole backlog first).
//
// Latency is receipt time minus the event's engine timestamp, both
// CLOCK_MONOTONIC (process.hrtime here; ts_ns from the engine or producer),
// in µs, kept in an HDR histogram (hdr-histogram-js, WebAssembly build).
// The sequence check is exact: every event must carry the next expected seq,
// and a gap notice must start at it; anything else counts as a violation.
import * as hdr from 'hdr-histogram-js';
import { WebSocket } from 'ws';
import { Centrifuge } from 'centrifuge';

await hdr.initWebAssembly();
const newHist = () => hdr.build({ useWebAssembly: true, lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });

let ws;
let centrifuge; // the Centrifuge client, for the centrifugo peer
let lost = 0; // centrifugo: events skipped across a reconnect
let hist = newHist();
let measuring = false;
let windowEvents = 0;
let windowStart = 0n;
// Whole-subscription accounting.
let firstSeq = 0;
let expected = 0; // next seq due; 0 until the first event or subscribed
let received = 0;
let gapDropped = 0;
let violations = 0;
let upstreamDropped = 0;
let throttle = 0;
let throttleStart = 0;
let throttleCount = 0;
let settleWaiter;

const TWO_32 = 2 ** 32;
const monoNs = () => {
  const [s, ns] = process.hrtime();
  return s * 1e9 + ns;
};

/** The first few violations, described, for the report. */
let violationNotes = [];
const violation = (what) => {
  violations++;
  if (violationNotes.length < 8) violationNotes.push(what);
};

function onEvent(seq, tsNs, now) {
  if (expected === 0) expected = seq;
  if (centrifuge && seq > expected) lost += seq - expected;
  else if (seq !== expected) violation(`event ${seq} where ${expected} was due`);
  expected = seq + 1;
  received++;
  if (measuring) {
    windowEvents++;
    hist.recordValue(Math.max(0, Math.round((now - tsNs) / 1e3)));
  }
}

function onGap(m) {
  // slow_consumer: shed for this client; ingest_dropped (an edge): never
  // reached JetStream. Both stand for a run of seqs that will not arrive.
  if (m.reason !== 'slow_consumer' && m.reason !== 'ingest_dropped') {
    violation(`gap ${m.from}-${m.to} (${m.reason}) where ${expected} was due`);
    return;
  }
  // ingest_dropped gaps carry dropped: null (the edge cannot know how many
  // matched a filter); for these unfiltered subscriptions it is every seq.
  const dropped = m.dropped ?? m.to - m.from + 1;
  if (m.reason === 'slow_consumer') gapDropped += dropped;
  else upstreamDropped += dropped;
  if (expected !== 0 && m.from !== expected) violation(`gap ${m.from}-${m.to} (${m.reason}) where ${expected} was due`);
  if (m.to - m.from + 1 !== dropped) violation(`gap ${m.from}-${m.to} (${m.reason}) of ${m.dropped} events`); // an unfiltered subscription drops every seq in range
  expected = m.to + 1;
}

function afterMessage(n) {
  if (settleWaiter && expected > settleWaiter.lastSeq) settleWaiter.done();
  if (!throttle) return;
  throttleCount += n;
  const ahead = throttleStart + (throttleCount / throttle) * 1e3 - Date.now();
  if (ahead > 1) {
    const sock = ws;
    sock.pause();
    setTimeout(() => sock.resume(), ahead);
  }
}

function onBinary(d) {
  const now = monoNs();
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const count = v.getUint32(4, true);
  let off = 16 + ((d[3] + 7) & ~7);
  for (let k = 0; k < count; k++) {
    const ts = v.getUint32(off + 32, true) + v.getUint32(off + 36, true) * TWO_32;
    const seq = v.getUint32(off + 40, true) + v.getUint32(off + 44, true) * TWO_32;
    onEvent(seq, ts, now);
    off += v.getUint32(off, true);
  }
  afterMessage(count);
}

function onText(text, server, subscribed) {
  const now = monoNs();
  const m = JSON.parse(text);
  if (server === 'naive') {
    onEvent(m.seq, Number(m.ts), now);
    return afterMessage(1);
  }
  if (m.type === 'events') {
    for (const e of m.events) {
      if (Array.isArray(e)) onEvent(e[0], Number(e[4]), now);
      else onEvent(e.seq, Number(e.ts), now);
    }
    return afterMessage(m.events.length);
  }
  if (m.type === 'gap') return onGap(m);
  if (m.type === 'subscribed') {
    firstSeq = m.next_seq;
    expected = m.next_seq;
    subscribed();
  }
}

/** Connects the Centrifuge client library and subscribes to the peer's channel. */
function connectCentrifugo(url) {
  return new Promise((resolve, reject) => {
    centrifuge = new Centrifuge(url, { websocket: WebSocket });
    const sub = centrifuge.newSubscription('bench');
    sub.on('publication', (ctx) => {
      const now = monoNs();
      for (const e of ctx.data) onEvent(e.seq, Number(e.ts), now);
      afterMessage(ctx.data.length);
    });
    sub.once('subscribed', () => resolve({}));
    sub.once('error', (e) => reject(new Error(`centrifugo subscription: ${e.error?.message ?? e.type}`)));
    sub.subscribe();
    centrifuge.connect();
  });
}

const commands = {
  connect: ({ url, server, encoding, throttle: t, filter }) =>
    server === 'centrifugo' ? connectCentrifugo(url) : new Promise((resolve, reject) => {
      throttle = t || 0;
      const rows = encoding === 'json-rows';
      const sock = new WebSocket(url, server === 'evbridge' ? [`evbridge.v1.${rows ? 'json' : encoding}`] : [], { perMessageDeflate: false });
      ws = sock;
      ws.on('error', reject);
      ws.on('open', () => {
        throttleStart = Date.now();
        if (server === 'naive') resolve({});
        else ws.send(JSON.stringify({ type: 'subscribe', id: 's', ...filter, ...(rows ? { format: 'rows' } : {}) }));
      });
      // A closed socket may still emit what it had buffered: ignore it.
      ws.on('message', (d, isBinary) => sock !== ws || (isBinary ? onBinary(d) : onText(d.toString(), server, () => resolve({ firstSeq }))));
    }),
  start: () => {
    hist.destroy();
    hist = newHist();
    windowEvents = 0;
    measuring = true;
    windowStart = process.hrtime.bigint();
    return {};
  },
  stop: () => {
    measuring = false;
    const seconds = Number(process.hrtime.bigint() - windowStart) / 1e9;
    return { events: windowEvents, seconds, hist: hdr.encodeIntoCompressedBase64(hist) };
  },
  settle: ({ lastSeq, timeoutMs }) =>
    new Promise((resolve) => {
      const report = (settled) => ({ settled, firstSeq, expected, received, gapDropped, upstreamDropped, violations, violationNotes, lost });
      if (expected > lastSeq) return resolve(report(true));
      const t = setTimeout(() => {
        settleWaiter = undefined;
        resolve(report(false));
      }, timeoutMs);
      settleWaiter = { lastSeq, done: () => (clearTimeout(t), (settleWaiter = undefined), resolve(report(true))) };
    }),
  close: ({ terminate }) =>
    new Promise((resolve) => {
      if (centrifuge) {
        centrifuge.disconnect();
        centrifuge = undefined;
        return resolve();
      }
      const sock = ws;
      if (!sock || sock.readyState === WebSocket.CLOSED) return resolve();
      if (terminate) sock.terminate();
      const t = setTimeout(() => (sock.terminate(), resolve()), 2000);
      sock.once('close', () => (clearTimeout(t), resolve()));
      sock.resume();
      sock.close();
    }).then(() => {
      ws = undefined;
      expected = received = gapDropped = upstreamDropped = violations = firstSeq = lost = 0;
      violationNotes = [];
      return {};
    }),
};

process.on('message', async (m) => {
  try {
    process.send({ id: m.id, ok: true, ...(await commands[m.cmd](m)) });
  } catch (err) {
    process.send({ id: m.id, ok: false, error: String(err?.message ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
