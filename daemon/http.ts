/**
 * HTTP on the daemon's one port: `/metrics` (Prometheus text format),
 * `/healthz` (liveness), `/readyz` (engine started and draining), and the
 * WebSocket upgrade at `ws.path`, which is authorised here before the
 * handshake: path, connection limit, Origin allow-list, bearer token.
 * With `faultInjection` on, `POST /debug/fault/:name?count=N` and
 * `POST /debug/panic?count=N` drive the engine's fault injection.
 */
import { timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import Router from 'find-my-way';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { EngineHost } from './engine.js';
import type { Metrics } from './metrics.js';
import { Fault, type FaultName } from './native.js';
import type { StreamServer } from './ws.js';

export interface HttpDeps {
  cfg: Config;
  metrics: Metrics;
  engine: EngineHost;
  stream: StreamServer;
  log: Logger;
}

/** Why an upgrade was refused, with the HTTP status it gets. */
type Refusal = { status: 401 | 403 | 404 | 503; reason: string };

function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Checks an upgrade request; returns why it is refused, or null. */
export function checkUpgrade(cfg: Config, req: IncomingMessage, connections: number, accepting: boolean): Refusal | null {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname !== cfg.ws.path) return { status: 404, reason: 'unknown path' };
  if (!accepting) return { status: 503, reason: 'shutting down' };
  if (connections >= cfg.ws.maxConnections) return { status: 503, reason: 'too many connections' };
  const origin = req.headers.origin;
  // Browsers always send Origin; the allow-list applies to them. Clients
  // that send none (services, scripts) rely on the token instead.
  if (origin !== undefined && cfg.ws.allowedOrigins.length > 0 && !cfg.ws.allowedOrigins.includes(origin)) {
    return { status: 403, reason: 'origin not allowed' };
  }
  if (cfg.ws.token) {
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    // Browsers cannot set headers on a WebSocket; they may pass the token as
    // the access_token query parameter instead (RFC 6750 section 2.3).
    if (!tokenMatches(cfg.ws.token, bearer ?? url.searchParams.get('access_token') ?? undefined)) {
      return { status: 401, reason: 'missing or wrong bearer token' };
    }
  }
  return null;
}

const STATUS_TEXT: Record<Refusal['status'], string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' };

function refuse(socket: Duplex, r: Refusal) {
  const body = `${r.reason}\n`;
  const extra = r.status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '';
  socket.end(
    `HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status]}\r\nConnection: close\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export function createHttpServer(d: HttpDeps): { server: Server; stopAccepting: () => void } {
  const router = Router({
    ignoreTrailingSlash: true,
    defaultRoute: (_req, res) => send(res, 404, 'text/plain', 'not found\n'),
  });
  let accepting = true;
  function send(res: ServerResponse, status: number, type: string, body: string) {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }
  router.on('GET', '/metrics', (_req, res) => {
    d.metrics.scrape().then(
      (text) => send(res, 200, d.metrics.registry.contentType, text),
      (err: Error) => {
        d.log.error({ err: err.message }, 'metrics scrape failed');
        send(res, 500, 'text/plain', 'metrics scrape failed\n');
      },
    );
  });
  router.on('GET', '/healthz', (_req, res) => send(res, 200, 'text/plain', 'ok\n'));
  router.on('GET', '/readyz', (_req, res) =>
    d.engine.ready && accepting ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', 'not ready\n'),
  );
  if (d.cfg.faultInjection) {
    const count = (req: IncomingMessage) => Number(new URL(req.url ?? '/', 'http://x').searchParams.get('count') ?? '1');
    router.on('POST', '/debug/fault/:name', (req, res, params) => {
      const name = params.name as FaultName;
      const n = count(req);
      if (!(name in Fault) || !Number.isInteger(n) || n < 1 || n > 1_000_000) {
        return send(res, 400, 'application/json', JSON.stringify({ error: `unknown fault "${name}" or bad count; faults: ${Object.keys(Fault).join(', ')}` }));
      }
      send(res, 200, 'application/json', JSON.stringify({ fault: name, calls: d.engine.inject(name, n) }));
    });
    router.on('POST', '/debug/panic', (req, res) => {
      const n = count(req);
      if (!Number.isInteger(n) || n < 1) return send(res, 400, 'application/json', JSON.stringify({ error: 'bad count' }));
      send(res, 200, 'application/json', JSON.stringify({ panics: n, status: d.engine.injectPanic(n) }));
    });
  }

  const server = createServer((req, res) => router.lookup(req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const r = checkUpgrade(d.cfg, req, d.stream.connections, accepting);
    if (r) {
      // The reason and address only: never the Authorization header or URL.
      d.log.info({ remote: req.socket.remoteAddress, status: r.status, reason: r.reason }, 'WebSocket upgrade refused');
      refuse(socket, r);
      return;
    }
    d.stream.handleUpgrade(req, socket, head);
  });
  return {
    server,
    stopAccepting: () => {
      accepting = false;
    },
  };
}
