#!/usr/bin/env node
/**
 * The `evbridge` command. Exit codes: 0 after a clean shutdown, 1 when the
 * native libraries or a listening address cannot be used, 2 for a bad
 * configuration (one message naming the key), 130/143 when a second signal
 * forces the exit.
 */
import { Command } from 'commander';
import pino from 'pino';
import { ConfigError, KEYS, loadConfig } from './config.js';
import { EngineStartError } from './engine.js';
import { NativeLoadError } from './native.js';
import { VERSION, startDaemon } from './main.js';

const program = new Command('evbridge')
  .description('Bridge a native C event engine to WebSocket subscribers, with Prometheus metrics.')
  .version(VERSION)
  .option('--config <file>', 'JSON configuration file')
  .allowExcessArguments(false)
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
for (const k of KEYS) program.option(`--${k.flag} <value>`, `${k.path.join('.')} (env ${k.env})`);
program.addHelpText('after', '\nEvery key can also come from the config file and from the environment variable shown.');
program.parse();

const opts = program.opts<Record<string, string | undefined>>();
const flags: Record<string, string | undefined> = {};
for (const k of KEYS) {
  const camel = k.flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
  flags[k.flag] = opts[camel];
}

let cfg;
try {
  cfg = loadConfig({ file: opts.config, env: process.env, flags });
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`evbridge: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const log = pino({ level: cfg.log.level, base: { service: 'evbridge', pid: process.pid } }, pino.destination({ sync: true }));

try {
  const daemon = await startDaemon(cfg, log);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal: sig }, 'second signal: forcing exit');
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    log.info({ signal: sig }, 'shutting down');
    const watchdog = setTimeout(() => {
      log.error({ timeoutMs: cfg.shutdownTimeoutMs }, 'shutdown took too long: forcing exit');
      process.exit(1);
    }, cfg.shutdownTimeoutMs);
    watchdog.unref();
    daemon.stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
} catch (err) {
  if (err instanceof NativeLoadError || err instanceof EngineStartError) {
    process.stderr.write(`evbridge: ${err.message}\n`);
    process.exit(1);
  }
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
    process.stderr.write(`evbridge: cannot listen for HTTP on ${cfg.http.host}:${cfg.http.port}: ${e.message}\n`);
    process.exit(1);
  }
  throw err;
}
