// The naive peer of issue 5, part 2: what a user writes in an afternoon.
// A plain `ws` server; a C producer thread (bench/peers/producer.c, paced
// like the engine's generator) calls a JS function through ffi-rs's void
// callback (the fastest per-event ffi-rs path of part 1: a threadsafe
// function with an unbounded queue); the function JSON.stringify's the event
// and ws.send's it to every connected client. No batching, no bound, no
// drop counting.
//
//   node bench/e2e/naive-peer.mjs <events/s> <max seconds>
// Prints {"port":N} once listening (127.0.0.1); starts producing when a line
// "go" arrives on stdin (so that its clients connect before the load starts:
// its best case), and produces until the count is reached or SIGTERM. The
// message fields match evbridge's JSON events.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ffi from 'ffi-rs';
import { WebSocketServer } from 'ws';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const [rate, maxSeconds] = process.argv.slice(2).map(Number);

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
await new Promise((r) => wss.on('listening', r));

ffi.open({ library: 'producer', path: join(root, 'native', 'build', 'libbenchproducer.so') });
const call = (funcName, retType, paramsType, paramsValue) => ffi.load({ library: 'producer', funcName, retType, paramsType, paramsValue });

const onEvent = (seq, tsNs, payload) => {
  const msg = JSON.stringify({
    seq: seq + 1,
    kind: 'gen',
    source: 0,
    source_seq: seq,
    ts: String(tsNs),
    time: Date.now(),
    payload: Buffer.from(payload).toString('base64'),
  });
  for (const c of wss.clients) c.send(msg);
};
const type = ffi.funcConstructor({
  paramsType: [ffi.DataType.Double, ffi.DataType.Double, ffi.arrayConstructor({ type: ffi.DataType.U8Array, length: 64 })],
  retType: ffi.DataType.Void,
});
const holder = ffi.createPointer({ paramsType: [type], paramsValue: [onEvent] });
console.log(JSON.stringify({ port: wss.address().port }));
process.stdin.once('data', () => {
  call('bp_start_paced', ffi.DataType.I32, [ffi.DataType.External, ffi.DataType.Double, ffi.DataType.Double], [ffi.unwrapPointer(holder)[0], rate, rate * maxSeconds]);
});

process.on('SIGTERM', () => {
  call('bp_stop', ffi.DataType.Void, [], []);
  process.exit(0);
});
