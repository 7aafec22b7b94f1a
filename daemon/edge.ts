/**
 * The edge role (`role: "edge"`): no engine and no native library. It reads
 * the ingest's events from NATS JetStream (nats/source.ts) and serves them
 * on `/v1/stream` exactly as a single daemon does: both encodings, filters,
 * resume by seq and epoch, gap notices, the slow-consumer policy, access
 * control, `/metrics`, `/healthz`, `/readyz` (ready once it has caught up
 * with the stream) and the status page.
 *
 * Edges keep no state a client depends on: the epoch and the seqs are the
 * ingest's, so a client that reconnects to another edge resumes from its
 * last seq. Each edge's replay window (`replay.maxEvents`,
 * `replay.maxBytes`) is filled from the stream at start, so a resume is
 * served within what both the window and the stream hold.
 */
import type { Logger } from 'pino';
import { Subject } from 'rxjs';
import { Authenticator } from './auth.js';
import type { EventBatch } from './batch.js';
import { sourceMonoNowNs, useSourceClock } from './clock.js';
import type { Config } from './config.js';
import type { EngineDescription } from './engine.js';
import { KindTable } from './kinds.js';
import { Errors } from './errors.js';
import { StreamServer } from './fanout/server.js';
import { createHttpServer, listen } from './http.js';
import { VERSION } from './paths.js';
import { Metrics } from './metrics.js';
import { connectNats } from './nats/connection.js';
import { JetStreamSource } from './nats/source.js';
import type { EpochMeta } from './nats/wire.js';
import { buildStatus } from './status.js';

/** A running edge. */
export interface Edge {
  httpPort: number;
  stream: StreamServer;
  metrics: Metrics;
  source: JetStreamSource;
  stop(): Promise<void>;
  reloadKeys(): void;
}

/** The engine description an edge states, from the ingest's meta message. */
function describe(meta: EpochMeta | undefined): EngineDescription {
  const e = meta?.engine;
  return {
    name: e?.name ?? 'none yet',
    version: e?.version ?? '',
    path: e?.path ? `${e.path} (on the ingest)` : '',
    abi_version: '',
    kinds: e?.kinds ?? [],
    sources: e?.sources ?? [],
    counters: [],
    debug: false,
    unused_config_keys: [],
  };
}

/**
 * Starts an edge.
 * @throws EvbError EVB_ERR_CONFIG (no nats.servers), EVB_ERR_NATS (unreachable), EVB_ERR_LISTEN.
 */
export async function startEdge(cfg: Config, log: Logger): Promise<Edge> {
  if (cfg.nats.servers.length === 0) throw Errors.EVB_ERR_CONFIG('role "edge" reads from NATS JetStream: set nats.servers.');
  const auth = new Authenticator(cfg.ws);
  const metrics = new Metrics(null);
  metrics.enableEdge();
  const nc = await connectNats(cfg.nats, 'edge', log, metrics);
  const batches$ = new Subject<EventBatch>();
  let meta: EpochMeta | undefined;
  const stream = new StreamServer({ cfg, batches$, metrics, log, kinds: new KindTable([]), engine: describe(undefined), version: VERSION, auth, epoch: 'none' });
  const source = new JetStreamSource(
    nc,
    cfg.nats,
    {
      onEpoch: (m) => {
        meta = m;
        useSourceClock(BigInt(m.wallMinusMonoNs));
        metrics.edgeEpoch();
        stream.resetEpoch(m.epoch, new KindTable(m.engine.kinds), describe(m));
      },
      onBatch: (b) => {
        // Age at the edge's receipt (stage "drain"), on the ingest's clock via the wall clocks.
        const now = sourceMonoNowNs();
        metrics.eventAges('drain', b, now);
        batches$.next(b);
      },
      onGap: (from, to) => stream.upstreamGap(from, to),
    },
    metrics,
    log,
  );
  const running = source.run().catch((err: Error) => log.error({ err }, 'edge: the JetStream consumer stopped'));
  const startedAt = Date.now();
  const status = () =>
    buildStatus({
      version: VERSION,
      epoch: stream.epoch,
      startedAt,
      wsPath: cfg.ws.path,
      engine: describe(meta),
      metrics,
      panics: () => [],
      sessions: () => stream.sessionSummaries(),
    });
  const { server, stopAccepting } = createHttpServer({ cfg, metrics, stream, log, status, auth, ready: () => source.caughtUp && meta !== undefined });
  let httpPort: number;
  try {
    httpPort = await listen(server, cfg);
  } catch (err) {
    source.stop();
    await nc.close();
    throw err;
  }
  server.on('error', (err) => log.error({ err }, 'HTTP server error'));
  log.info(
    {
      version: VERSION,
      node: process.version,
      role: 'edge',
      nats: cfg.nats.servers,
      stream: cfg.nats.stream,
      http: `http://${cfg.http.host}:${httpPort}`,
      ws: `ws://${cfg.http.host}:${httpPort}${cfg.ws.path}`,
      httpPort,
      auth: auth.mode,
    },
    'evbridge started',
  );
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      stopAccepting();
      server.close();
      source.stop();
      await stream.close(Math.max(100, cfg.shutdownTimeoutMs - 1000));
      server.closeAllConnections();
      await nc.close();
      await running;
      log.info({ wsConnections: stream.connections }, 'evbridge stopped');
    })());
  const reloadKeys = () => auth.reloadOnSignal(metrics, log);
  return { httpPort, stream, metrics, source, stop, reloadKeys };
}
