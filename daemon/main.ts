/**
 * Wires the daemon together, in the order data flows: the native bridge and
 * the engine plugin (EngineHost), the drain loop (RingDrain), metrics, the
 * WebSocket fan-out (StreamServer) and HTTP. `stop()` shuts down in order:
 * stop accepting, stop the engine and drain the ring, flush to clients and
 * close them with 1001, log the final counters.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Authenticator } from './auth.js';
import type { Config } from './config.js';
import { RingDrain } from './drain.js';
import { EngineHost, type NativeStats } from './engine.js';
import { Errors } from './errors.js';
import { StreamServer } from './fanout/server.js';
import { type JsonWriter, useJsonWriter } from './fanout/encode.js';
import { nativeJsonWriter } from './fanout/json-native.js';
import { createHttpServer, listen } from './http.js';
import { Metrics } from './metrics.js';
import { buildStatus } from './status.js';
import { WALL_MINUS_MONO_NS } from './clock.js';
import { defaultLibraryPaths, openNative, repoRoot } from './native.js';

export { VERSION } from './paths.js';
import { VERSION } from './paths.js';

/** A running daemon. */
export interface Daemon {
  httpPort: number;
  engine: EngineHost;
  stream: StreamServer;
  metrics: Metrics;
  /** Graceful shutdown; resolves with the final native counters. Idempotent. */
  stop(): Promise<NativeStats>;
  /** The counters now (the final ones once stopped). */
  counters(): NativeStats;
  /** SIGHUP: re-reads the JWT key file (a bad file keeps the previous keys); logs and counts the result. */
  reloadKeys(): void;
}

/** Warns when http.maxConnections comes near the process's open-file limit. */
function checkFileLimit(cfg: Config, log: Logger) {
  let soft: number | undefined;
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    soft = m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return; // not Linux: nothing to read
  }
  const reserve = 64; // the engine's sockets, the plugin, logs, native libraries
  if (soft !== undefined && cfg.http.maxConnections + reserve > soft) {
    log.warn(
      { maxConnections: cfg.http.maxConnections, openFileLimit: soft },
      `http.maxConnections (${cfg.http.maxConnections}) plus ${reserve} exceeds the open-file limit (${soft}): raise the limit (LimitNOFILE= in the systemd unit) or lower http.maxConnections`,
    );
  }
}

/**
 * Starts the daemon: loads the native side, starts the engine, listens.
 * @throws EvbError from the catalogue (errors.ts) when anything cannot start;
 *   what was started by then is stopped again.
 */
export async function startDaemon(cfg: Config, log: Logger): Promise<Daemon> {
  const auth = new Authenticator(cfg.ws); // a bad key file fails before anything starts
  const native = openNative(cfg.native.bridgeLibrary || defaultLibraryPaths().bridge);
  const engine = new EngineHost(cfg, native, log);
  const metrics = new Metrics(engine);
  let jsonWriter: JsonWriter | null = null;
  if (cfg.ws.jsonEncoder === 'native') {
    try {
      jsonWriter = nativeJsonWriter(native, metrics.jsonNative);
    } catch (err) {
      log.warn({ err }, 'the bridge could not make its JSON writer: JSON is written in JavaScript');
    }
  }
  useJsonWriter(jsonWriter);
  let stream: StreamServer | undefined;
  const drain = new RingDrain(engine, native, cfg.drain, log, {
    onDrainAges: (b, now) => metrics.eventAges('drain', b, now),
    onPanicLogSuppressed: (n) => metrics.panicLogSuppressedBy(n),
    distinctFilters: () => stream?.filters.size ?? 0,
  });
  stream = new StreamServer({ cfg, batches$: drain.batches$, metrics, log, kinds: engine.kinds, engine: engine.description, version: VERSION, auth });
  const startedAt = Date.now();
  const status = () =>
    buildStatus({
      version: VERSION,
      epoch: stream.epoch,
      startedAt,
      wsPath: cfg.ws.path,
      engine: engine.description,
      metrics,
      panics: () => drain.panics(),
      sessions: () => stream.sessionSummaries(),
    });
  // NATS JetStream (ingest role with nats.servers): connected, streams made
  // and this epoch's engine description published before any event.
  let nats: { nc: import('@nats-io/transport-node').NatsConnection; publisher: import('./nats/publisher.js').JetStreamPublisher } | undefined;
  if (cfg.nats.servers.length > 0) {
    try {
      const { connectNats } = await import('./nats/connection.js');
      const { JetStreamPublisher, connectIngest } = await import('./nats/publisher.js');
      const { RECORD_ABI } = await import('./nats/wire.js');
      metrics.enableNatsIngest();
      const nc = await connectNats(cfg.nats, 'ingest', log, metrics);
      try {
        const d = engine.description;
        const { js } = await connectIngest(nc, cfg.nats, {
          epoch: stream.epoch,
          wallMinusMonoNs: WALL_MINUS_MONO_NS.toString(),
          engine: { name: d.name, version: d.version, kinds: d.kinds, sources: d.sources, path: d.path },
          recordAbi: RECORD_ABI,
          startedAt: Date.now(),
        });
        const publisher = new JetStreamPublisher(js, cfg.nats, stream.epoch, metrics, log);
        drain.batches$.subscribe({ next: (b) => publisher.offer(b) });
        nats = { nc, publisher };
      } catch (err) {
        await nc.close();
        throw err;
      }
    } catch (err) {
      await engine.close(() => drain.finish());
      throw (err as { code?: string }).code === 'EVB_ERR_NATS' ? err : Errors.EVB_ERR_NATS((err as Error).message);
    }
  }
  const { server, stopAccepting } = createHttpServer({ cfg, metrics, engine, stream, log, status, auth });
  checkFileLimit(cfg, log);
  let httpPort: number;
  try {
    httpPort = await listen(server, cfg);
  } catch (err) {
    await engine.close(() => drain.finish());
    throw err;
  }
  try {
    engine.start(drain.schedule);
  } catch (err) {
    server.close();
    await engine.close(() => drain.finish());
    throw err;
  }
  drain.schedule();
  server.on('error', (err) => log.error({ err }, 'HTTP server error'));
  const d = engine.description;
  log.info(
    {
      version: VERSION,
      node: process.version,
      bridgeAbi: native.abiVersion,
      engine: { plugin: d.path, name: d.name, version: d.version, abi: d.abi_version },
      kinds: d.kinds,
      sources: d.sources,
      http: `http://${cfg.http.host}:${httpPort}`,
      ws: `ws://${cfg.http.host}:${httpPort}${cfg.ws.path}`,
      httpPort,
      epoch: stream.epoch,
      ringBytes: cfg.ring.capacityBytes,
      auth: auth.mode,
      ...(auth.keyDescription ? { jwtKeys: auth.keyDescription } : {}),
      faultInjection: cfg.faultInjection,
    },
    'evbridge started',
  );

  let stopping: Promise<NativeStats> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      stopAccepting();
      server.close();
      const final = await engine.close(() => drain.finish());
      const budget = Math.max(100, cfg.shutdownTimeoutMs - 1000);
      await Promise.all([stream.close(budget), nats?.publisher.close(budget)]);
      await nats?.nc.close();
      server.closeAllConnections();
      log.info({ counters: final, wsConnections: stream.connections }, 'evbridge stopped');
      return final;
    })());
  const reloadKeys = () => auth.reloadOnSignal(metrics, log);
  return { httpPort, engine, stream, metrics, stop, counters: () => engine.stats(), reloadKeys };
}
