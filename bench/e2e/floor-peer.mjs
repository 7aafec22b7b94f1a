// The floor peer: a WebSocket server that does as little as a server can,
// so that the benchmark can show what this machine and the client processes
// allow before any server does work (issue 15: "latency p99 at most 2 ms
// with 10 clients" and "2 M events/s of JSON to one client" are both bounded
// by the 2 cores the daemon shares with its clients).
//
// It speaks just enough of evbridge's protocol (protocol/PROTOCOL.md) for
// bench/e2e/client.mjs: the subprotocols evbridge.v1.binary and
// evbridge.v1.json, a `subscribe` answered with `subscribed` (its
// `next_seq`), then `events` messages of 256 events each with 64-byte
// payloads, binary records or JSON objects or rows as the subscribe asked.
// It has no engine, no ring, no drain and no filters: each event is stamped
// (ts, CLOCK_MONOTONIC ns) when its message is built, just before the send,
// so the latency a client measures is the time from the server's send to
// the client's handling, and none of it is spent inside a server.
// Clients that asked for the same encoding share one message per batch, and
// their own sequence numbers (one run per encoding).
//
//   node bench/e2e/floor-peer.mjs <events/s>
// events/s > 0: paced; on each turn of Node's timers (about every 1 ms) it
// sends the events due since the last turn, at most 256 per message.
// 0: as fast as each socket takes them; at most 4 messages per client are
// queued in the server, and the next message for an encoding is built when
// every client of that encoding has fewer (the ws send callbacks).
// Prints {"port":N} once listening on 127.0.0.1; starts sending when a line
// "go" arrives on stdin; stops at SIGTERM or SIGKILL.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
// The binary layout comes from the project's protocol module (one source).
const { encodeEventsHeader, encodeRecord } = await import(join(root, 'dist/protocol/binary.js'));
const { REC } = await import(join(root, 'dist/protocol/records.js'));

const rate = Number(process.argv[2] ?? 0);
const PER_MESSAGE = 256;
const IN_FLIGHT = 4;
const PAYLOAD = Buffer.alloc(64, 0x5a);
const PAYLOAD_B64 = PAYLOAD.toString('base64');
const SUB_ID = 's';
const WALL_MINUS_MONO_NS = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

const monoNs = () => {
  const [s, ns] = process.hrtime();
  return s * 1e9 + ns;
};

/** PER_MESSAGE records (kind 0, source 1, the payload), copied into each
 * binary message in one call; seq, source_seq and ts are written over them
 * per event. */
const RECORDS = Buffer.concat(Array.from({ length: PER_MESSAGE }, () => encodeRecord({ seq: 0, kind: 0, source: 1, sourceSeq: 0, flags: 0, tsNs: 0n, payload: PAYLOAD })));
const RECORD_LEN = RECORDS.length / PER_MESSAGE;

/** Writes `v` (an integer below 2^53) as a little-endian u64 at `o`. */
const u64 = (b, o, v) => {
  b.writeUInt32LE(v % 2 ** 32, o);
  b.writeUInt32LE(Math.floor(v / 2 ** 32), o + 4);
};

const encoders = {
  binary(seq, n, ts) {
    const head = encodeEventsHeader(SUB_ID, n, WALL_MINUS_MONO_NS);
    const b = Buffer.allocUnsafe(head.length + n * RECORD_LEN);
    b.set(head, 0);
    RECORDS.copy(b, head.length, 0, n * RECORD_LEN);
    for (let i = 0, o = head.length; i < n; i++, o += RECORD_LEN) {
      u64(b, o + REC.sourceSeq, seq + i);
      u64(b, o + REC.tsNs, ts);
      u64(b, o + REC.seq, seq + i);
    }
    return b;
  },
  objects(seq, n, ts) {
    const tail = `,"ts":"${ts}","time":${Date.now()},"payload":"${PAYLOAD_B64}"}`;
    const parts = new Array(n);
    for (let i = 0; i < n; i++) parts[i] = `{"seq":${seq + i},"kind":"gen","source":1,"source_seq":${seq + i}${tail}`;
    return `{"type":"events","sub":"${SUB_ID}","events":[${parts.join(',')}]}`;
  },
  rows(seq, n, ts) {
    const tail = `,"${ts}",${Date.now()},"${PAYLOAD_B64}"]`;
    const parts = new Array(n);
    for (let i = 0; i < n; i++) parts[i] = `[${seq + i},"gen",1,${seq + i}${tail}`;
    return `{"type":"events","sub":"${SUB_ID}","events":[${parts.join(',')}]}`;
  },
};

/** Clients by encoding: members (socket -> messages in flight) and the next seq. */
const groups = new Map(Object.keys(encoders).map((key) => [key, { key, members: new Map(), seq: 1 }]));
let going = false;

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: false,
  handleProtocols: (offered) => [...offered].find((p) => p === 'evbridge.v1.binary' || p === 'evbridge.v1.json') ?? false,
});
wss.on('connection', (ws) => {
  ws.once('message', (d) => {
    let m;
    try {
      m = JSON.parse(String(d));
    } catch {
      return ws.close(1007, 'not JSON');
    }
    const key = ws.protocol === 'evbridge.v1.binary' ? 'binary' : m.format === 'rows' ? 'rows' : 'objects';
    const g = groups.get(key);
    ws.send(JSON.stringify({ type: 'subscribed', id: m.id, format: key === 'rows' ? 'rows' : 'objects', next_seq: g.seq, replayed: 0 }));
    g.members.set(ws, 0);
    ws.on('close', () => g.members.delete(ws));
    if (going && rate === 0) pump(g);
  });
  ws.on('error', () => ws.terminate());
});

/** Builds one message of `n` events for group `g` and sends it to every member. */
function sendTo(g, n) {
  const { key } = g;
  const built = encoders[key](g.seq, n, monoNs());
  // Text is made into bytes once, not once per client (ws would for a string).
  const msg = typeof built === 'string' ? Buffer.from(built) : built;
  const opts = { binary: key === 'binary' };
  g.seq += n;
  for (const [ws] of g.members) {
    g.members.set(ws, g.members.get(ws) + 1);
    ws.send(msg, opts, () => {
      if (!g.members.has(ws)) return;
      g.members.set(ws, g.members.get(ws) - 1);
      if (rate === 0) pump(g);
    });
  }
}

/** Unpaced: sends while every member of `g` has room. */
function pump(g) {
  while (g.members.size && [...g.members.values()].every((q) => q < IN_FLIGHT)) sendTo(g, PER_MESSAGE);
}

function paced() {
  const start = monoNs();
  let made = 0;
  const turn = () => {
    let due = Math.floor(((monoNs() - start) / 1e9) * rate) - made;
    made += due;
    while (due > 0) {
      const n = Math.min(due, PER_MESSAGE);
      for (const g of groups.values()) if (g.members.size) sendTo(g, n);
      due -= n;
    }
    setTimeout(turn, 0);
  };
  turn();
}

await new Promise((r) => wss.on('listening', r));
console.log(JSON.stringify({ port: wss.address().port }));
process.stdin.once('data', () => {
  going = true;
  if (rate > 0) paced();
  else for (const g of groups.values()) pump(g);
});
process.on('SIGTERM', () => process.exit(0));
