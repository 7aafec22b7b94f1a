#!/usr/bin/env node
/**
 * evbridge-sub: subscribe to an evbridge daemon and print NDJSON, one event
 * per line on stdout: {seq, kind, source, source_seq, ts, time, payload
 * (base64), subject (when the event has one), epoch}. Gap notices go to
 * stderr as JSON lines (never dropped silently), and so does every failed
 * connection attempt. Exit codes: 0 after --count events or on
 * SIGINT/SIGTERM; 2 for bad arguments; 3 when the daemon refuses the
 * credentials; 4 when no connection opened within --give-up-after; 5 when
 * the daemon refuses the subscription (a bad filter).
 */
import { execFile } from 'node:child_process';
import { Command, InvalidArgumentError, Option } from 'commander';
import { AuthError, ConnectError, DaemonError, EvbridgeClient } from './client.js';

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
};
const list = (v: string) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
const kinds = (v: string) => {
  const names = list(v);
  for (const k of names) if (!/^[a-z0-9_]{1,32}$/.test(k)) throw new InvalidArgumentError(`"${k}" is not a kind name (1 to 32 characters of [a-z0-9_])`);
  return names;
};

const program = new Command('evbridge-sub')
  .description('Subscribe to an evbridge daemon and print events as NDJSON.')
  .option('--url <url>', 'daemon stream URL', 'ws://127.0.0.1:8080/v1/stream')
  .option('--kinds <list>', 'comma-separated kind names (the engine\'s; see its hello)', kinds)
  .option('--sources <list>', 'comma-separated source ids', (v) => list(v).map(int))
  .option('--subjects <list>', 'comma-separated subject patterns (* one token, > the rest)', list)
  .option('--from-seq <n>', 'start at this sequence number, inclusive', int)
  .option('--epoch <id>', 'the epoch --from-seq belongs to')
  .option(
    '--encoding <enc>',
    'json or binary',
    (v) => {
      if (v !== 'json' && v !== 'binary') throw new InvalidArgumentError('expected json or binary');
      return v;
    },
    'json',
  )
  .addOption(new Option('--format <form>', 'with --encoding json: events on the wire as objects or rows (rows parse faster; the output is the same)').choices(['objects', 'rows']).default('objects'))
  .option('--token <token>', 'bearer token (or EVBRIDGE_TOKEN)')
  .option(
    '--token-command <cmd>',
    'shell command printing a fresh token on stdout; run for each connection and before the token expires (JWT access), and the connection is refreshed with its output',
  )
  .option('--count <n>', 'exit after this many events', int)
  .option('--give-up-after <ms>', 'exit 4 when no connection opened for this long', int, 30_000)
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
program.parse();
const o = program.opts<{
  url: string;
  kinds?: string[];
  sources?: number[];
  subjects?: string[];
  fromSeq?: number;
  epoch?: string;
  encoding: 'json' | 'binary';
  format: 'objects' | 'rows';
  token?: string;
  tokenCommand?: string;
  count?: number;
  giveUpAfter: number;
}>();

/** Runs --token-command (10 s at most) and returns its trimmed output. */
const tokenFromCommand = (cmd: string) => (): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile('/bin/sh', ['-c', cmd], { timeout: 10_000, maxBuffer: 64 * 1024 }, (err, stdout) => {
      if (err) return reject(new Error(`--token-command failed: ${err.message}`));
      const t = stdout.trim();
      if (!t) return reject(new Error('--token-command printed nothing'));
      resolve(t);
    }),
  );

const client = new EvbridgeClient({
  url: o.url,
  encoding: o.encoding,
  format: o.format,
  token: o.tokenCommand ? tokenFromCommand(o.tokenCommand) : (o.token ?? process.env.EVBRIDGE_TOKEN),
  giveUpAfterMs: o.giveUpAfter,
  onNotice: (n) => process.stderr.write(`${JSON.stringify(n)}\n`),
});
let printed = 0;
const subscription = client
  .subscribe({
    ...(o.kinds ? { kinds: o.kinds } : {}),
    ...(o.sources ? { sources: o.sources } : {}),
    ...(o.subjects ? { subjects: o.subjects } : {}),
    ...(o.fromSeq !== undefined ? { fromSeq: o.fromSeq } : {}),
    ...(o.epoch ? { epoch: o.epoch } : {}),
  })
  .subscribe({
    next: (item) => {
      if (item.type === 'gap') {
        process.stderr.write(`${JSON.stringify({ type: 'gap', ...item.gap })}\n`);
        return;
      }
      const e = item.event;
      process.stdout.write(
        `${JSON.stringify({
          seq: e.seq,
          kind: e.kind,
          source: e.source,
          source_seq: e.sourceSeq,
          ts: e.ts.toString(),
          time: e.time,
          payload: Buffer.from(e.payload).toString('base64'),
          ...(e.subject !== undefined ? { subject: e.subject } : {}),
          epoch: e.epoch,
        })}\n`,
      );
      if (o.count !== undefined && ++printed >= o.count) {
        subscription.unsubscribe();
        process.stdout.write('', () => process.exit(0));
      }
    },
    error: (err: Error) => {
      process.stderr.write(`evbridge-sub: ${err.message}\n`);
      process.exit(err instanceof AuthError ? 3 : err instanceof ConnectError ? 4 : err instanceof DaemonError ? 5 : 1);
    },
    complete: () => process.exit(0),
  });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
