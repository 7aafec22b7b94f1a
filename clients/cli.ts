#!/usr/bin/env node
/**
 * evbridge-sub: subscribe to an evbridge daemon and print NDJSON, one event
 * per line on stdout: {seq, kind, source, source_seq, ts, time, payload
 * (base64), epoch}. Gap notices go to stderr as JSON lines (never dropped
 * silently). Exit codes: 0 after --count events or on SIGINT/SIGTERM,
 * 2 for bad arguments, 3 when the daemon refuses the credentials.
 */
import { Command, InvalidArgumentError } from 'commander';
import { KIND_NAMES, type KindName } from '../protocol/messages.js';
import { AuthError, EvbridgeClient } from './client.js';

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
};
const kinds = (v: string) => {
  const list = v.split(',').map((s) => s.trim());
  for (const k of list) if (!(KIND_NAMES as readonly string[]).includes(k)) throw new InvalidArgumentError(`unknown kind "${k}"; kinds: ${KIND_NAMES.join(', ')}`);
  return list as KindName[];
};

const program = new Command('evbridge-sub')
  .description('Subscribe to an evbridge daemon and print events as NDJSON.')
  .option('--url <url>', 'daemon stream URL', 'ws://127.0.0.1:8080/v1/stream')
  .option('--kinds <list>', `comma-separated kinds (${KIND_NAMES.join(', ')})`, kinds)
  .option('--sources <list>', 'comma-separated source ids', (v) => v.split(',').map(int))
  .option('--from-seq <n>', 'start at this sequence number, inclusive', int)
  .option('--epoch <id>', 'the epoch --from-seq belongs to')
  .option('--encoding <enc>', 'json or binary', (v) => {
    if (v !== 'json' && v !== 'binary') throw new InvalidArgumentError('expected json or binary');
    return v;
  }, 'json')
  .option('--token <token>', 'bearer token (or EVBRIDGE_TOKEN)')
  .option('--count <n>', 'exit after this many events', int)
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
program.parse();
const o = program.opts<{ url: string; kinds?: KindName[]; sources?: number[]; fromSeq?: number; epoch?: string; encoding: 'json' | 'binary'; token?: string; count?: number }>();

const client = new EvbridgeClient({ url: o.url, encoding: o.encoding, token: o.token ?? process.env.EVBRIDGE_TOKEN });
let printed = 0;
const subscription = client
  .subscribe({ ...(o.kinds ? { kinds: o.kinds } : {}), ...(o.sources ? { sources: o.sources } : {}), ...(o.fromSeq !== undefined ? { fromSeq: o.fromSeq } : {}), ...(o.epoch ? { epoch: o.epoch } : {}) })
  .subscribe({
    next: (item) => {
      if (item.type === 'gap') {
        process.stderr.write(`${JSON.stringify({ type: 'gap', ...item.gap })}\n`);
        return;
      }
      const e = item.event;
      process.stdout.write(
        `${JSON.stringify({ seq: e.seq, kind: e.kind, source: e.source, source_seq: e.sourceSeq, ts: e.ts.toString(), time: e.time, payload: Buffer.from(e.payload).toString('base64'), epoch: e.epoch })}\n`,
      );
      if (o.count !== undefined && ++printed >= o.count) {
        subscription.unsubscribe();
        process.stdout.write('', () => process.exit(0));
      }
    },
    error: (err: Error) => {
      process.stderr.write(`evbridge-sub: ${err.message}\n`);
      process.exit(err instanceof AuthError ? 3 : 1);
    },
  });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
