/**
 * The NATS connection of an ingest or an edge: connect (a server that
 * cannot be reached at start is one clear error), reconnect for ever, log
 * every change of state and count it.
 */
import { type NatsConnection, connect } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Errors } from '../errors.js';
import type { Metrics } from '../metrics.js';

/** How long the first connection may take, ms. */
export const CONNECT_TIMEOUT_MS = 5000;

/**
 * Connects to `nats.servers`.
 * @throws EvbError EVB_ERR_NATS when no server answers within CONNECT_TIMEOUT_MS.
 */
export async function connectNats(cfg: Config['nats'], role: string, log: Logger, metrics: Metrics): Promise<NatsConnection> {
  metrics.enableNatsConnection();
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: cfg.servers,
      name: `evbridge-${role}-${process.pid}`,
      timeout: CONNECT_TIMEOUT_MS,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 5000,
      maxPingOut: 3,
    });
  } catch (err) {
    throw Errors.EVB_ERR_NATS(`cannot reach NATS at ${cfg.servers.join(', ')}: ${(err as Error).message}`);
  }
  metrics.natsConnected(true);
  log.info({ server: nc.getServer(), servers: cfg.servers }, 'NATS connected');
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          metrics.natsConnected(false);
          metrics.natsDisconnected();
          log.warn({ server: s.server }, 'NATS disconnected; reconnecting');
          break;
        case 'reconnect':
          metrics.natsConnected(true);
          metrics.natsReconnected();
          log.info({ server: s.server }, 'NATS reconnected');
          break;
        case 'error':
          log.warn({ err: s.error?.message }, 'NATS error');
          break;
        default:
          break;
      }
    }
  })();
  return nc;
}
