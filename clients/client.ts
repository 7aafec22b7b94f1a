/**
 * evbridge client library: subscribe to a daemon's stream as an RxJS
 * Observable, with reconnects and resume. Runs in Node (with the `ws`
 * package, loaded on demand) and in browsers (the global WebSocket).
 *
 * - `subscribe(filter)` opens one connection per subscription and emits
 *   `{type: 'event'}` and `{type: 'gap'}` items in sequence order.
 * - On a lost connection it reconnects with exponential backoff and full
 *   jitter (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015)
 *   and resumes from the last seq it emitted in that epoch. The daemon
 *   replays from its window, so nothing is lost silently: whatever cannot be
 *   replayed arrives as a gap item (`out_of_window`, or `new_epoch` after a
 *   daemon restart).
 * - Every server frame is validated (protocol/messages.ts
 *   `ServerMessageSchema`, and the binary decoder's checks); a frame that
 *   fails ends the connection (1002) and the client reconnects.
 * - An `error` frame about this subscription before it was accepted (a bad
 *   filter) ends the Observable with a `DaemonError`; other error frames
 *   leave the connection and the stream as they are (PROTOCOL.md: the
 *   connection stays open) and go to `onNotice`.
 * - Auth: the token goes in the `access_token` query parameter, which
 *   browsers can send (they cannot set headers on a WebSocket). `token` may
 *   be a function: it is called for each connection, and, when the daemon's
 *   hello says the token expires (JWT access), again before it does
 *   (`refreshBeforeMs`, or half the time left when that is less), and the
 *   new token is sent in a `refresh` message, so the connection stays open
 *   with no gap. A close for expiry (4011) reconnects with a new token. A 401/403
 *   ends the Observable with an `AuthError` instead of retrying (Node only,
 *   from ws's `unexpected-response` event: browsers do not expose the
 *   handshake status, so they retry).
 * - `giveUpAfterMs`: when no connection has opened for that long, the
 *   Observable ends with a `ConnectError`; `onNotice` hears each failed try.
 */
import { Observable } from 'rxjs';
import { decodeEventsFrame } from '../protocol/binary.js';
import { type KindName, ServerMessageSchema, SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON } from '../protocol/messages.js';

/** One event as the client emits it, whatever the encoding. */
export interface ClientEvent {
  seq: number;
  /** Kind name ('unknown' if the hello did not name its number). */
  kind: KindName;
  source: number;
  sourceSeq: number;
  /** Engine timestamp, CLOCK_MONOTONIC ns. */
  ts: bigint;
  /** Wall-clock Unix ms. */
  time: number;
  payload: Uint8Array;
  /** The event's subject, if it has one. */
  subject?: string;
  /** The daemon run this seq belongs to. */
  epoch: string;
}

export interface ClientGap {
  /** `slow_consumer`, `out_of_window`, `new_epoch`, `ingest_dropped` (an edge), or a reason of a later revision. */
  reason: string;
  from: number;
  to: number | null;
  dropped: number | null;
  epoch: string;
  oldEpoch?: string;
}

export type StreamItem = { type: 'event'; event: ClientEvent } | { type: 'gap'; gap: ClientGap };

export interface Filter {
  kinds?: KindName[];
  sources?: number[];
  /** Subject patterns with NATS wildcards (`*` one token, `>` the rest). */
  subjects?: string[];
  /** First seq wanted, inclusive (resume point); with `epoch`, of that epoch. */
  fromSeq?: number;
  epoch?: string;
}

/** The subset of the WebSocket API the client uses (browsers and `ws`). */
export interface SocketLike {
  binaryType: string;
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** Node's `ws` only: the handshake's HTTP response when it was not 101. */
  on?(event: 'unexpected-response', listener: (req: unknown, res: { statusCode?: number }) => void): unknown;
}
export type SocketFactory = (url: string, protocols: string[]) => SocketLike | Promise<SocketLike>;

/** Something the client noticed and carried on after. */
export type Notice =
  | { type: 'connect_failed'; attempt: number; message: string }
  | { type: 'daemon_error'; code: string; message: string }
  | { type: 'bad_frame'; message: string }
  | { type: 'token_refreshed'; exp: number | null }
  | { type: 'refresh_failed'; message: string };

export interface ClientOptions {
  /** e.g. ws://127.0.0.1:8080/v1/stream */
  url: string;
  /** A bearer token, or a function giving one (called per connection and to refresh). */
  token?: string | (() => string | Promise<string>);
  /** Refresh this long before the token expires (ms). Default 30 000. */
  refreshBeforeMs?: number;
  encoding?: 'json' | 'binary';
  /** With the JSON encoding: events as objects (the default) or as rows,
   * arrays of the same fields, which parse in about 0.6 of the time
   * (PROTOCOL.md, "events"). The emitted events are the same. */
  format?: 'objects' | 'rows';
  /** Reconnect backoff: first delay, cap, growth; delays are drawn in [0, d]. */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  /** false: end the Observable with the first connection. Default true. */
  reconnect?: boolean;
  /** End with a ConnectError when no connection opened for this long (ms). Default: never. */
  giveUpAfterMs?: number;
  /** How to open sockets; default: global WebSocket, else the `ws` package. */
  socket?: SocketFactory;
  /** Hears what the client noticed and carried on after. */
  onNotice?: (n: Notice) => void;
}

/** The daemon refused the credentials (HTTP 401 or 403 on the upgrade). */
export class AuthError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

/** No connection could be opened within `giveUpAfterMs`. */
export class ConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectError';
  }
}

/** The daemon refused the subscription (an `error` frame naming it). */
export class DaemonError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'DaemonError';
  }
}

const defaultSocket: SocketFactory = async (url, protocols) => {
  const g = globalThis as { WebSocket?: new (u: string, p: string[]) => SocketLike };
  if (g.WebSocket) return new g.WebSocket(url, protocols);
  const mod = (await import('ws')) as unknown as { WebSocket: new (u: string, p: string[]) => SocketLike };
  return new mod.WebSocket(url, protocols);
};

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The subscription id this client uses on each of its connections. */
const SUB = 's';

export class EvbridgeClient {
  constructor(private readonly opts: ClientOptions) {}

  /** A cold Observable: each subscriber gets its own connection. */
  subscribe(filter: Filter = {}): Observable<StreamItem> {
    const o = this.opts;
    const encoding = o.encoding ?? 'json';
    const open = o.socket ?? defaultSocket;
    const initial = o.backoff?.initialMs ?? 100;
    const cap = o.backoff?.maxMs ?? 10_000;
    const factor = o.backoff?.factor ?? 2;
    const notice = o.onNotice ?? (() => {});
    return new Observable<StreamItem>((sub) => {
      let sock: SocketLike | undefined;
      let stopped = false;
      let attempt = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let epoch = filter.epoch;
      let next = filter.fromSeq; // resume point
      let lastOpen = Date.now();
      let refreshTimer: ReturnType<typeof setTimeout> | undefined;
      const getToken = async () => (typeof o.token === 'function' ? await o.token() : o.token);
      const withToken = (t: string | undefined) => (t ? `${o.url}${o.url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(t)}` : o.url);
      /** Sends a fresh token before `exp` (Unix seconds), when `token` is a function. */
      const scheduleRefresh = (s: SocketLike, exp: number | null) => {
        clearTimeout(refreshTimer);
        if (exp === null || typeof o.token !== 'function') return;
        const left = exp * 1000 - Date.now();
        const wait = Math.max(0, left - Math.min(o.refreshBeforeMs ?? 30_000, left / 2));
        refreshTimer = setTimeout(() => {
          getToken().then(
            (t) => {
              if (!stopped && sock === s && t) s.send(JSON.stringify({ type: 'refresh', token: t }));
            },
            (err: Error) => notice({ type: 'refresh_failed', message: `the token function failed: ${err.message}` }),
          );
        }, Math.min(wait, 2 ** 31 - 1));
      };

      const end = (err?: Error) => {
        stopped = true;
        clearTimeout(timer);
        clearTimeout(refreshTimer);
        if (err) sub.error(err);
        else sub.complete();
      };
      const emitEvent = (e: ClientEvent) => {
        if (next !== undefined && e.seq < next) return; // never a duplicate
        next = e.seq + 1;
        sub.next({ type: 'event', event: e });
      };

      const connect = async () => {
        let s: SocketLike;
        try {
          s = await open(withToken(await getToken()), [encoding === 'binary' ? SUBPROTOCOL_BINARY : SUBPROTOCOL_JSON]);
        } catch (err) {
          return end(err as Error);
        }
        if (stopped) {
          // Torn down while the socket was opening: close it quietly (ws
          // reports closing a CONNECTING socket as an error event).
          s.onerror = () => {};
          return s.close(1000);
        }
        sock = s;
        s.binaryType = 'arraybuffer';
        let current = '';
        let accepted = false;
        let opened = false;
        const kindNames = new Map<number, string>();
        const broken = (message: string) => {
          notice({ type: 'bad_frame', message });
          s.close(1002, 'bad frame from the daemon'); // then reconnect
        };
        s.onopen = () => {
          opened = true;
          lastOpen = Date.now();
        };
        let noted = false; // this attempt's failure was reported already
        s.on?.('unexpected-response', (_req, res) => {
          const status = res.statusCode ?? 0;
          noted = true;
          if (status === 401 || status === 403) {
            end(new AuthError(status, `evbridge refused the connection: HTTP ${status} (${status === 401 ? 'missing or wrong token' : 'origin not allowed'})`));
          } else notice({ type: 'connect_failed', attempt, message: `HTTP ${status} on the upgrade` });
          s.close(); // ws leaves the handshake open for this listener to end
        });
        s.onmessage = (ev) => {
          const bytes = toBytes(ev.data);
          if (bytes) {
            const r = decodeEventsFrame(bytes);
            if (!r.ok) return broken(`bad binary frame: ${r.message}`);
            for (const b of r.frame.events) {
              emitEvent({
                seq: b.seq,
                kind: kindNames.get(b.kind) ?? 'unknown',
                source: b.source,
                sourceSeq: b.sourceSeq,
                ts: b.tsNs,
                time: b.timeMs,
                payload: b.payload,
                ...(b.subject !== undefined ? { subject: b.subject } : {}),
                epoch: current,
              });
            }
            return;
          }
          let raw: unknown;
          try {
            raw = JSON.parse(String(ev.data));
          } catch {
            return broken('a text frame that is not JSON');
          }
          const type = (raw as { type?: unknown } | null)?.type;
          if (!['hello', 'subscribed', 'unsubscribed', 'events', 'gap', 'error', 'refreshed'].includes(String(type))) return; // future types
          const parsed = ServerMessageSchema.safeParse(raw);
          if (!parsed.success) return broken(`invalid ${String(type)} message: ${parsed.error.issues[0]?.message ?? ''}`);
          const m = parsed.data;
          switch (m.type) {
            case 'hello': {
              current = m.epoch;
              attempt = 0;
              for (const k of m.engine?.kinds ?? []) kindNames.set(k.number, k.name);
              s.send(
                JSON.stringify({
                  type: 'subscribe',
                  id: SUB,
                  ...(filter.kinds ? { kinds: filter.kinds } : {}),
                  ...(filter.sources ? { sources: filter.sources } : {}),
                  ...(filter.subjects ? { subjects: filter.subjects } : {}),
                  ...(encoding === 'json' && o.format === 'rows' ? { format: 'rows' } : {}),
                  ...(next !== undefined ? { from_seq: next } : {}),
                  ...(next !== undefined && epoch !== undefined ? { epoch } : {}),
                }),
              );
              if (epoch !== undefined && epoch !== current) next = undefined; // the old seqs mean nothing now
              epoch = current;
              scheduleRefresh(s, m.auth?.exp ?? null);
              return;
            }
            case 'refreshed':
              notice({ type: 'token_refreshed', exp: m.exp });
              scheduleRefresh(s, m.exp);
              return;
            case 'subscribed':
              if (m.id === SUB) accepted = true;
              return;
            case 'events':
              for (const e of m.events) {
                // A row holds the object's values in ROW_FIELDS order.
                const w = Array.isArray(e) ? { seq: e[0], kind: e[1], source: e[2], source_seq: e[3], ts: e[4], time: e[5], payload: e[6], subject: e[7] } : e;
                emitEvent({
                  seq: w.seq,
                  kind: w.kind,
                  source: w.source,
                  sourceSeq: w.source_seq,
                  ts: BigInt(w.ts),
                  time: w.time,
                  payload: base64ToBytes(w.payload),
                  ...(w.subject !== undefined ? { subject: w.subject } : {}),
                  epoch: current,
                });
              }
              return;
            case 'gap':
              sub.next({ type: 'gap', gap: { reason: m.reason, from: m.from, to: m.to, dropped: m.dropped, epoch: current, ...(m.old_epoch ? { oldEpoch: m.old_epoch } : {}) } });
              if (m.to !== null && m.reason !== 'new_epoch') next = Math.max(next ?? 0, m.to + 1);
              return;
            case 'error':
              if (m.id === SUB && !accepted) return end(new DaemonError(m.code, `evbridge refused the subscription: ${m.code}: ${m.message}`));
              if (m.code === 'refresh_refused') notice({ type: 'refresh_failed', message: m.message });
              notice({ type: 'daemon_error', code: m.code, message: m.message });
              return;
            default:
              return; // unsubscribed
          }
        };
        s.onerror = (ev) => {
          if (!opened && !noted && !stopped) notice({ type: 'connect_failed', attempt, message: ev.message ?? 'connection failed' });
          noted = true;
        };
        s.onclose = () => {
          sock = undefined;
          clearTimeout(refreshTimer);
          if (opened) lastOpen = Date.now(); // the give-up clock counts from the last open connection
          if (stopped) return;
          if (o.reconnect === false) return end();
          if (o.giveUpAfterMs !== undefined && Date.now() - lastOpen > o.giveUpAfterMs) {
            return end(new ConnectError(`no connection to ${o.url} for ${o.giveUpAfterMs} ms (${attempt} attempts)`));
          }
          const d = Math.min(cap, initial * factor ** attempt++);
          timer = setTimeout(() => void connect(), Math.random() * d);
        };
      };
      void connect();
      return () => {
        stopped = true;
        clearTimeout(timer);
        clearTimeout(refreshTimer);
        sock?.close(1000);
      };
    });
  }
}
