#!/usr/bin/env node
/**
 * The `evbridge` command. Exit codes: 0 after a clean shutdown; 1 when the
 * native libraries, the engine plugin or a listening address cannot be used,
 * or when shutdown overran `shutdownTimeoutMs`; 2 for a bad configuration
 * (one message naming the key); 130/143 when a second signal forces the
 * exit. Every exit after the start logs the counters.
 */
import { Command } from 'commander';
import pino from 'pino';
import { type Config, KEYS, loadConfig } from './config.js';
import { EvbError } from './errors.js';
import { VERSION } from './paths.js';

const program = new Command('evbridge')
  .description('Bridge a native C event loop (an engine plugin) to WebSocket subscribers, with Prometheus metrics.')
  .version(VERSION)
  .option('--config <file>', 'JSON configuration file')
  .option('--engine-set <key=value>', 'set one key of engine.config (repeatable); VALUE is JSON when it parses, else a string', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .allowExcessArguments(false)
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
for (const k of KEYS) {
  program.option(`--${k.flag} <value>`, `${k.description} (${k.path.join('.')}; env ${k.env}; default ${JSON.stringify(k.default)})`);
}
program.addHelpText('after', '\nEvery key can also come from the config file (README, "Configuration") and from the environment variable shown.');
program.parse();

const opts = program.opts<Record<string, string | undefined> & { engineSet: string[] }>();
const flags: Record<string, string | undefined> = {};
for (const k of KEYS) {
  const camel = k.flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
  flags[k.flag] = opts[camel];
}

function fail(err: unknown): never {
  if (err instanceof EvbError) {
    process.stderr.write(`evbridge: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`evbridge: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
}

let cfg: Config;
try {
  cfg = loadConfig({ file: opts.config, env: process.env, flags, engineSets: opts.engineSet });
} catch (err) {
  fail(err);
}

const log = pino({ level: cfg.log.level, base: { service: 'evbridge', pid: process.pid } }, pino.destination({ sync: true }));

/** What the signal handlers need of either role. */
interface Running {
  stop(): Promise<unknown>;
  counters(): unknown;
  reloadKeys(): void;
}
let daemon: Running;
try {
  if (cfg.role === 'edge') {
    const { startEdge } = await import('./edge.js');
    const edge = await startEdge(cfg, log);
    daemon = { stop: edge.stop, counters: () => ({ wsConnections: edge.stream.connections, lastSeq: edge.stream.lastSeq }), reloadKeys: edge.reloadKeys };
  } else {
    const { startDaemon } = await import('./main.js'); // loads the native bridge (ffi-rs): ingest only
    daemon = await startDaemon(cfg, log);
  }
} catch (err) {
  fail(err);
}

let signals = 0;
const onSignal = (sig: NodeJS.Signals) => {
  signals++;
  if (signals > 1) {
    log.warn({ signal: sig, counters: daemon.counters() }, 'second signal: forcing exit');
    process.exit(sig === 'SIGINT' ? 130 : 143);
  }
  log.info({ signal: sig }, 'shutting down');
  const watchdog = setTimeout(() => {
    log.error({ timeoutMs: cfg.shutdownTimeoutMs, counters: daemon.counters() }, 'shutdown took too long: forcing exit');
    process.exit(1);
  }, cfg.shutdownTimeoutMs);
  watchdog.unref();
  daemon.stop().then(
    () => process.exit(0),
    (err: Error) => {
      log.error({ err, counters: daemon.counters() }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
// SIGHUP re-reads the JWT key file (key rotation without a restart).
process.on('SIGHUP', () => daemon.reloadKeys());
