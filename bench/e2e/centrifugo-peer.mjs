// Centrifugo as a peer of the end-to-end benchmark (issue 15): what a user
// picks instead of evbridge when their events are already in a process that
// can publish over HTTP. Centrifugo (the binary bench/peers/centrifugo.sh
// builds with `go install`) runs with a config written here: anonymous
// clients may subscribe to the channel, no history, default client queue
// (1 MiB; a client that falls further behind is disconnected, and its
// client library reconnects). The publisher packs 256 events into each
// publication, as Centrifugo's users batch by hand, and sends 8 publications
// per request to the server API (POST /api/batch), one request at a time so
// that publications keep their order, paced like the engine's generator. Each event is the JSON object evbridge writes (seq, kind,
// source, source_seq, ts, time, payload of 64 bytes in base64), `ts` being
// CLOCK_MONOTONIC ns when its publication was made, so clients measure
// latency as they do for evbridge.
//
//   node bench/e2e/centrifugo-peer.mjs <centrifugo binary> <events/s> <max seconds>
// Prints {"port":N,"pid":P} once Centrifugo answers /health (P: Centrifugo's
// pid, for its RSS); starts publishing when a line "go" arrives on stdin;
// stops at the count, on SIGTERM, or when stdin closes, and stops Centrifugo.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [bin, rateArg, secondsArg] = process.argv.slice(2);
const rate = Number(rateArg);
const maxSeconds = Number(secondsArg);
/** Events per publication and publications per request. */
const PER_PUBLICATION = 256;
const PER_REQUEST = 8;
/** Requests in flight at most: concurrent requests could be published out
 * of order. The publisher falls behind its pace when a request takes
 * longer than the pace allows. */
const MAX_INFLIGHT = 1;
const KEY = 'evbridge-bench';
const CHANNEL = 'bench';

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'evb-centrifugo-'));
const config = join(dir, 'config.json');
writeFileSync(
  config,
  JSON.stringify({
    http_server: { address: '127.0.0.1', port },
    log: { level: 'error' },
    http_api: { key: KEY },
    health: { enabled: true },
    client: { allow_anonymous_connect_without_token: true, allowed_origins: ['*'] },
    channel: { without_namespace: { allow_subscribe_for_anonymous: true, allow_subscribe_for_client: true } },
    usage_stats: { disabled: true },
  }),
);
const cf = spawn(bin, ['--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
cf.on('exit', (code) => {
  if (!stopping) {
    process.stderr.write(`centrifugo exited with ${code}\n`);
    process.exit(1);
  }
});
let stopping = false;
const stop = () => {
  stopping = true;
  cf.kill('SIGKILL');
  process.exit(0);
};
process.on('SIGTERM', stop);

const base = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/health`)).ok) break;
  } catch {}
  if (i > 200) throw new Error('centrifugo did not come up within 10 s');
  await new Promise((r) => setTimeout(r, 50));
}
process.stdout.write(`${JSON.stringify({ port, pid: cf.pid })}\n`);

const payload = Buffer.alloc(64, 0x5a).toString('base64');
const monoNs = () => {
  const [s, ns] = process.hrtime();
  return s * 1e9 + ns;
};
const wallMinusMono = Date.now() - monoNs() / 1e6;
/** The data of one publication: events seq .. seq + PER_PUBLICATION - 1. */
function publication(seq) {
  const ts = Math.round(monoNs());
  const time = Math.round(ts / 1e6 + wallMinusMono);
  const parts = new Array(PER_PUBLICATION);
  for (let k = 0; k < PER_PUBLICATION; k++) {
    parts[k] = `{"seq":${seq + k},"kind":"gen","source":0,"source_seq":${seq + k - 1},"ts":"${ts}","time":${time},"payload":"${payload}"}`;
  }
  return `{"publish":{"channel":"${CHANNEL}","data":[${parts.join(',')}]}}`;
}

let inflight = 0;
async function send(seq) {
  const cmds = [];
  for (let p = 0; p < PER_REQUEST; p++) cmds.push(publication(seq + p * PER_PUBLICATION));
  inflight++;
  try {
    const res = await fetch(`${base}/api/batch`, { method: 'POST', headers: { 'X-API-Key': KEY, 'Content-Type': 'application/json' }, body: `{"commands":[${cmds.join(',')}]}` });
    if (!res.ok) process.stderr.write(`publish: HTTP ${res.status}\n`);
    await res.arrayBuffer();
  } finally {
    inflight--;
  }
}

process.stdin.on('end', stop);
process.stdin.on('data', async (d) => {
  if (!String(d).includes('go')) return;
  const perRequest = PER_REQUEST * PER_PUBLICATION;
  const total = Math.round(rate * maxSeconds);
  const t0 = performance.now();
  let seq = 1;
  while (seq <= total) {
    const due = t0 + ((seq - 1) / rate) * 1000;
    const ahead = due - performance.now();
    if (ahead > 1 || inflight >= MAX_INFLIGHT) {
      await new Promise((r) => setTimeout(r, Math.max(1, ahead)));
      continue;
    }
    void send(seq);
    seq += perRequest;
  }
});
