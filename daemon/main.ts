/**
 * Wires the daemon together: native libraries, engine host, metrics, the
 * WebSocket fan-out and HTTP. `stop()` shuts down in order: stop accepting,
 * stop sources and drain the ring, flush to clients and close them with
 * 1001, log the final counters.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { EngineHost } from './engine.js';
import { createHttpServer } from './http.js';
import { Metrics, type NativeStats } from './metrics.js';
import { defaultLibraryPaths, openNative, repoRoot } from './native.js';
import { StreamServer } from './ws.js';

export const VERSION: string = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

export interface Daemon {
  httpPort: number;
  udpPort: number | undefined;
  engine: EngineHost;
  stream: StreamServer;
  metrics: Metrics;
  /** Graceful shutdown; resolves with the final native counters. Idempotent. */
  stop(): Promise<NativeStats>;
}

export async function startDaemon(cfg: Config, log: Logger): Promise<Daemon> {
  const builtIn = defaultLibraryPaths();
  const native = openNative({
    engine: cfg.native.engineLibrary || builtIn.engine,
    bridge: cfg.native.bridgeLibrary || builtIn.bridge,
  });
  let metrics: Metrics | undefined;
  const engine = new EngineHost(cfg, native, log, { onDrainAge: (s) => metrics?.eventAge('drain', s) });
  metrics = new Metrics(() => engine.stats(), engine.delayBoundsNs);
  const stream = new StreamServer(cfg, engine.batches$, metrics, log);
  const { server, stopAccepting } = createHttpServer({ cfg, metrics, engine, stream, log });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(cfg.http.port, cfg.http.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    engine.start();
  } catch (err) {
    server.close();
    engine.close();
    throw err;
  }
  server.on('error', (err) => log.error({ err: err.message }, 'HTTP server error'));
  const httpPort = (server.address() as AddressInfo).port;
  log.info(
    {
      version: VERSION,
      node: process.version,
      engineAbi: native.engine.abiVersion,
      bridgeAbi: native.bridge.abiVersion,
      http: `http://${cfg.http.host}:${httpPort}`,
      ws: `ws://${cfg.http.host}:${httpPort}${cfg.ws.path}`,
      httpPort,
      udpPort: engine.udpPort,
      sources: engine.sources,
      ringBytes: cfg.ring.capacityBytes,
      auth: cfg.ws.token ? 'bearer' : 'none',
      faultInjection: cfg.faultInjection,
    },
    'evbridge started',
  );

  let stopping: Promise<NativeStats> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      stopAccepting();
      server.close();
      const final = engine.close();
      await stream.close(Math.max(100, cfg.shutdownTimeoutMs - 1000));
      server.closeAllConnections();
      log.info({ counters: final, wsConnections: stream.connections }, 'evbridge stopped');
      return final;
    })());
  return { httpPort, udpPort: engine.udpPort, engine, stream, metrics, stop };
}
