/**
 * HTTP on the daemon's one port: `/metrics` (Prometheus text format),
 * `/healthz` (liveness), `/readyz` (engine started and draining), the live
 * status page at `/` and its data at `/api/status` (behind the same Origin
 * and token checks as the WebSocket), and the
 * WebSocket upgrade at `ws.path`, which is authorised here before the
 * handshake: path, connection limit, Origin allow-list, then the
 * credentials of `ws.auth` (auth.ts: none, the shared token, or a JWT whose
 * rights go with the connection). The status page and /debug are guarded by
 * the Origin allow-list and, when set, the shared `ws.token`, in every mode.
 *
 * With `faultInjection` on, `POST /debug/fault/:name?count=N`,
 * `POST /debug/panic?count=N` and `POST /debug/session-fault?count=N` drive
 * the engine's fault injection, the bridge's panic switch and the sessions'
 * fault switch. They sit behind the same Origin and token checks as the
 * WebSocket; names and counts are validated (counts are decimal integers of
 * 1 to 1,000,000) and the engine's injections run on a worker thread, one at
 * a time, so they never block the event loop.
 *
 * Resource limits: `http.maxConnections` TCP connections at most (Node closes
 * more at once; each is counted and logged, at most once per 10 s), and
 * header, request and keep-alive timeouts, so that idle and slow sockets
 * cannot hold file descriptors.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type IncomingMessage, type ServerResponse, STATUS_CODES, createServer, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import Router from 'find-my-way';
import type { Logger } from 'pino';
import { AuthError, type Authenticator, tokenOf } from './auth.js';
import type { Config } from './config.js';
import type { EngineHost } from './engine.js';
import { NATIVE_STATUS } from './kinds.js';
import type { Metrics, UpgradeRefusal } from './metrics.js';
import type { StreamServer } from './fanout/server.js';
import { Errors } from './errors.js';
import { repoRoot } from './paths.js';
import type { Status } from './status.js';

export interface HttpDeps {
  cfg: Config;
  metrics: Metrics;
  /** The engine (ingest role); absent on an edge, which has no debug engine routes. */
  engine?: EngineHost;
  /** Whether /readyz says ready (besides accepting); default: the engine's readiness. */
  ready?: () => boolean;
  stream: StreamServer;
  log: Logger;
  /** The status page's data (status.ts). */
  status: () => Promise<Status>;
  auth: Authenticator;
}

/** The status page's files: the HTML from the source tree, the bundle
 * (uPlot included) that `npm run build` writes to dist/status/. */
function loadStatusFiles(): Map<string, { type: string; body: Buffer }> {
  const files = new Map<string, { type: string; body: Buffer }>();
  const add = (route: string, path: string, type: string) => {
    try {
      files.set(route, { type, body: readFileSync(path) });
    } catch {
      // not built: the route answers 404 with a hint
    }
  };
  add('/', join(repoRoot, 'daemon', 'status', 'index.html'), 'text/html; charset=utf-8');
  add('/status/page.js', join(repoRoot, 'dist', 'status', 'page.js'), 'text/javascript; charset=utf-8');
  add('/status/page.css', join(repoRoot, 'dist', 'status', 'page.css'), 'text/css; charset=utf-8');
  return files;
}

/** Why a request was refused, with the HTTP status it gets. */
export interface Refusal {
  status: 401 | 403 | 404 | 503;
  reason: UpgradeRefusal;
  /** One line for the client and the log. */
  message: string;
}

function tokenMatches(expected: string, given: string | null | undefined): boolean {
  if (given === undefined || given === null) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A browser (which sends Origin) must come from an allowed origin. */
function checkOrigin(cfg: Config, req: IncomingMessage): Refusal | null {
  const origin = req.headers.origin;
  if (origin !== undefined && cfg.ws.allowedOrigins.length > 0 && !cfg.ws.allowedOrigins.includes(origin)) {
    return { status: 403, reason: 'origin', message: 'origin not allowed' };
  }
  return null;
}

/**
 * The access rule of the status page and the debug endpoints: the Origin
 * allow-list, and when `ws.token` is set the request must carry it as a
 * bearer token, in the Authorization header or, where headers cannot be set
 * (browsers), the `access_token` query parameter (RFC 6750 section 2.3).
 */
export function checkAccess(cfg: Config, req: IncomingMessage, url: URL): Refusal | null {
  const bad = checkOrigin(cfg, req);
  if (bad) return bad;
  if (cfg.ws.token && !tokenMatches(cfg.ws.token, tokenOf(req, url))) {
    return { status: 401, reason: 'token', message: 'missing or wrong bearer token' };
  }
  return null;
}

/** Checks an upgrade request before its credentials; returns why it is refused, or null. */
export function checkUpgrade(cfg: Config, req: IncomingMessage, connections: number, accepting: boolean): Refusal | null {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname !== cfg.ws.path) return { status: 404, reason: 'unknown_path', message: 'unknown path' };
  if (!accepting) return { status: 503, reason: 'shutting_down', message: 'shutting down' };
  if (connections >= cfg.ws.maxConnections) return { status: 503, reason: 'too_many_connections', message: 'too many connections' };
  return checkOrigin(cfg, req);
}

function refuse(socket: Duplex, r: Refusal) {
  const body = `${r.message}\n`;
  const extra = r.status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '';
  socket.end(
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status]}\r\nConnection: close\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** The request's log fields: address and Origin, never the token or the URL's query. */
function who(req: IncomingMessage) {
  return { remote: req.socket.remoteAddress, origin: req.headers.origin };
}

/** A count from the query: a decimal integer of 1 to `max`, or undefined. */
export function parseCount(url: URL, max: number): number | undefined {
  const raw = url.searchParams.get('count') ?? '1';
  if (!/^[1-9][0-9]{0,15}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n <= max ? n : undefined;
}

/** Largest count a debug request may ask for. */
export const DEBUG_COUNT_MAX = 1_000_000;

/** A fault name from the path (`nullEvent`) as the engine's debug command (`fault_null_event`). */
export function faultCommand(name: string): string | undefined {
  if (!/^[a-z][a-zA-Z]{0,31}$/.test(name)) return undefined;
  return `fault_${name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`;
}

/**
 * Starts `server` listening on `http.host`:`http.port` (both roles).
 * @returns the port bound (the one asked for, or the kernel's pick for 0).
 * @throws EvbError EVB_ERR_LISTEN when the address cannot be used; the
 *   caller stops what it had started.
 */
export async function listen(server: Server, cfg: Config): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(cfg.http.port, cfg.http.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw Errors.EVB_ERR_LISTEN(cfg.http.host, cfg.http.port, e.code, e.message);
  }
  return (server.address() as { port: number }).port;
}

export function createHttpServer(d: HttpDeps): { server: Server; stopAccepting: () => void } {
  const { cfg, log, metrics } = d;
  const router = Router({
    ignoreTrailingSlash: true,
    defaultRoute: (_req, res) => send(res, 404, 'text/plain', 'not found\n'),
  });
  let accepting = true;
  function send(res: ServerResponse, status: number, type: string, body: string) {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }
  const json = (res: ServerResponse, status: number, value: unknown) => send(res, status, 'application/json', JSON.stringify(value));
  router.on('GET', '/metrics', (_req, res) => {
    metrics.scrape().then(
      (text) => send(res, 200, metrics.registry.contentType, text),
      (err: Error) => {
        log.error({ err }, 'metrics scrape failed');
        send(res, 500, 'text/plain', 'metrics scrape failed\n');
      },
    );
  });
  router.on('GET', '/healthz', (_req, res) => send(res, 200, 'text/plain', 'ok\n'));

  // The live page and its data, behind the WebSocket's access checks; its
  // static files carry no data and are open.
  const files = loadStatusFiles();
  const guarded = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? '/', 'http://x');
    const refusal = checkAccess(cfg, req, url);
    if (!refusal) return true;
    log.info({ ...who(req), status: refusal.status, reason: refusal.reason, path: url.pathname }, 'status page request refused');
    if (refusal.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
    send(res, refusal.status, 'text/plain', `${refusal.message}\n`);
    return false;
  };
  for (const route of ['/', '/status/page.js', '/status/page.css']) {
    router.on('GET', route, (req, res) => {
      if (route === '/' && !guarded(req, res)) return;
      const f = files.get(route);
      if (!f) return send(res, 404, 'text/plain', 'the status page is not built: run `npm run build`\n');
      res.writeHead(200, { 'Content-Type': f.type, 'Content-Length': f.body.length, 'Cache-Control': 'no-cache' });
      res.end(f.body);
    });
  }
  router.on('GET', '/api/status', (req, res) => {
    if (!guarded(req, res)) return;
    d.status().then(
      (st) => json(res, 200, st),
      (err: Error) => {
        log.error({ err }, 'status failed');
        send(res, 500, 'text/plain', 'status failed\n');
      },
    );
  });
  router.on('GET', '/readyz', (_req, res) =>
    (d.ready ? d.ready() : (d.engine?.ready ?? false)) && accepting ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', 'not ready\n'),
  );

  if (cfg.faultInjection) {
    /** Runs `fn` for an authorised request with a valid count. */
    const debugRoute = (path: string, max: number, fn: (req: IncomingMessage, res: ServerResponse, count: number, params: Record<string, string | undefined>) => void) =>
      router.on('POST', path, (req, res, params) => {
        const url = new URL(req.url ?? '/', 'http://x');
        const refusal = checkAccess(cfg, req, url);
        if (refusal) {
          log.info({ ...who(req), status: refusal.status, reason: refusal.reason, path: url.pathname }, 'debug request refused');
          return json(res, refusal.status, { error: refusal.message });
        }
        const count = parseCount(url, max);
        if (count === undefined) return json(res, 400, { error: `count must be a whole number from 1 to ${max}` });
        fn(req, res, count, params);
      });
    const engine = d.engine;
    if (engine) debugRoute('/debug/fault/:name', DEBUG_COUNT_MAX, (_req, res, count, params) => {
      const name = params.name ?? '';
      const command = faultCommand(name);
      if (!command) return json(res, 400, { error: `unknown fault "${name}"` });
      engine.debug(command, count).then(
        (calls) => {
          if (calls >= 0) return json(res, 200, { fault: name, calls });
          if (calls === NATIVE_STATUS.busy) return json(res, 409, { error: 'another fault injection is running' });
          json(res, 400, { error: `the engine refused fault "${name}" (${engine.statusName(calls)})` });
        },
        (err: Error) => {
          log.error({ err }, 'fault injection failed');
          json(res, 500, { error: 'fault injection failed' });
        },
      );
    });
    if (engine) debugRoute('/debug/panic', DEBUG_COUNT_MAX, (_req, res, count) => json(res, 200, { panics: count, status: engine.injectPanic(count) }));
    debugRoute('/debug/session-fault', 100, (_req, res, count) => {
      d.stream.injectSessionFaults(count);
      json(res, 200, { sessionFaults: count });
    });
  }

  const server = createServer(
    {
      headersTimeout: cfg.http.headersTimeoutMs,
      requestTimeout: cfg.http.requestTimeoutMs,
      keepAliveTimeout: cfg.http.keepAliveTimeoutMs,
      // How often Node looks for connections past those timeouts (default 30 s).
      connectionsCheckingInterval: Math.max(250, Math.min(cfg.http.headersTimeoutMs, cfg.http.requestTimeoutMs) / 2),
    },
    (req, res) => router.lookup(req, res),
  );
  server.maxConnections = cfg.http.maxConnections;
  server.on('connection', (socket) => {
    metrics.httpConnection(1);
    socket.once('close', () => metrics.httpConnection(-1));
  });
  let dropsLogged = 0;
  let dropsSince = 0;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    metrics.httpRefusedMaxConnections();
    dropsSince++;
    const now = Date.now();
    if (now - dropsLogged >= 10_000) {
      log.warn(
        { limit: cfg.http.maxConnections, refused: dropsSince, remote: data?.remoteAddress },
        `http.maxConnections (${cfg.http.maxConnections}) reached: refusing connections`,
      );
      dropsLogged = now;
      dropsSince = 0;
    }
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refused = (r: Refusal, extra: object = {}) => {
      metrics.wsUpgradeRefused(r.reason);
      // The address, the Origin and the reason: never the Authorization header or the URL.
      log.info({ ...who(req), status: r.status, reason: r.reason, ...extra }, 'WebSocket upgrade refused');
      refuse(socket, r);
    };
    const r = checkUpgrade(cfg, req, d.stream.connections, accepting);
    if (r) return refused(r);
    const url = new URL(req.url ?? '/', 'http://x');
    d.auth.authenticate(tokenOf(req, url)).then(
      (principal) => {
        if (socket.destroyed) return;
        // Checked again: the limit or a shutdown may have come meanwhile.
        const again = checkUpgrade(cfg, req, d.stream.connections, accepting);
        if (again) return refused(again);
        d.stream.handleUpgrade(req, socket, head, principal);
      },
      (err: unknown) => {
        const e = err instanceof AuthError ? err : new AuthError('malformed', 'token could not be checked');
        metrics.authRefused(e.reason);
        if (!socket.destroyed) refused({ status: 401, reason: 'token', message: e.message }, { auth: e.reason, user: e.sub });
      },
    );
  });
  return {
    server,
    stopAccepting: () => {
      accepting = false;
    },
  };
}
