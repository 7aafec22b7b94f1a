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
 * - Auth: the token goes in the `access_token` query parameter, which
 *   browsers can send (they cannot set headers on a WebSocket). A 401/403
 *   ends the Observable with an `AuthError` instead of retrying (Node only:
 *   browsers do not expose the handshake status, so they retry).
 */
import { Observable } from 'rxjs';
import { decodeEventsFrame } from '../protocol/binary.js';
import { KIND_BY_NUMBER, type KindName, type ServerMessage, SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON, type WireEvent } from '../protocol/messages.js';

/** One event as the client emits it, whatever the encoding. */
export interface ClientEvent {
  seq: number;
  kind: KindName | 'unknown';
  source: number;
  sourceSeq: number;
  /** Engine timestamp, CLOCK_MONOTONIC ns. */
  ts: bigint;
  /** Wall-clock Unix ms. */
  time: number;
  payload: Uint8Array;
  /** The daemon run this seq belongs to. */
  epoch: string;
}

export interface ClientGap {
  reason: 'slow_consumer' | 'out_of_window' | 'new_epoch';
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
}
export type SocketFactory = (url: string, protocols: string[]) => SocketLike | Promise<SocketLike>;

export interface ClientOptions {
  /** e.g. ws://127.0.0.1:8080/v1/stream */
  url: string;
  token?: string;
  encoding?: 'json' | 'binary';
  /** Reconnect backoff: first delay, cap, growth; delays are drawn in [0, d]. */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  /** false: end the Observable with the first connection. Default true. */
  reconnect?: boolean;
  /** How to open sockets; default: global WebSocket, else the `ws` package. */
  socket?: SocketFactory;
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
    return new Observable<StreamItem>((sub) => {
      let sock: SocketLike | undefined;
      let stopped = false;
      let attempt = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let epoch = filter.epoch;
      let next = filter.fromSeq; // resume point
      const url = o.token ? `${o.url}${o.url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(o.token)}` : o.url;

      const emitEvent = (e: ClientEvent) => {
        if (next !== undefined && e.seq < next) return; // never a duplicate
        next = e.seq + 1;
        sub.next({ type: 'event', event: e });
      };

      const connect = async () => {
        let s: SocketLike;
        try {
          s = await open(url, [encoding === 'binary' ? SUBPROTOCOL_BINARY : SUBPROTOCOL_JSON]);
        } catch (err) {
          return sub.error(err);
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
        s.onmessage = (ev) => {
          const bytes = toBytes(ev.data);
          if (bytes) {
            const r = decodeEventsFrame(bytes);
            if (!r.ok) return sub.error(new Error(`bad binary frame from the daemon: ${r.message}`));
            for (const b of r.frame.events) {
              emitEvent({ seq: b.seq, kind: KIND_BY_NUMBER.get(b.kind) ?? 'unknown', source: b.source, sourceSeq: b.sourceSeq, ts: b.tsNs, time: b.timeMs, payload: b.payload, epoch: current });
            }
            return;
          }
          const m = JSON.parse(String(ev.data)) as ServerMessage;
          switch (m.type) {
            case 'hello': {
              current = m.epoch;
              attempt = 0;
              s.send(
                JSON.stringify({
                  type: 'subscribe',
                  id: 's',
                  ...(filter.kinds ? { kinds: filter.kinds } : {}),
                  ...(filter.sources ? { sources: filter.sources } : {}),
                  ...(next !== undefined ? { from_seq: next } : {}),
                  ...(next !== undefined && epoch !== undefined ? { epoch } : {}),
                }),
              );
              if (epoch !== undefined && epoch !== current) next = undefined; // the old seqs mean nothing now
              epoch = current;
              return;
            }
            case 'events':
              for (const w of m.events as WireEvent[]) {
                emitEvent({ seq: w.seq, kind: w.kind, source: w.source, sourceSeq: w.source_seq, ts: BigInt(w.ts), time: w.time, payload: base64ToBytes(w.payload), epoch: current });
              }
              return;
            case 'gap':
              sub.next({ type: 'gap', gap: { reason: m.reason, from: m.from, to: m.to, dropped: m.dropped, epoch: current, ...(m.old_epoch ? { oldEpoch: m.old_epoch } : {}) } });
              if (m.to !== null && m.reason !== 'new_epoch') next = Math.max(next ?? 0, m.to + 1);
              return;
            case 'error':
              return sub.error(new Error(`daemon error ${m.code}: ${m.message}`));
            default:
              return; // subscribed, unsubscribed, and future message types
          }
        };
        s.onerror = (ev) => {
          const status = /Unexpected server response: (\d+)/.exec(ev.message ?? '')?.[1];
          if (status === '401' || status === '403') {
            stopped = true;
            sub.error(new AuthError(Number(status), `evbridge refused the connection: HTTP ${status} (${status === '401' ? 'missing or wrong token' : 'origin not allowed'})`));
          }
        };
        s.onclose = () => {
          sock = undefined;
          if (stopped) return;
          if (o.reconnect === false) return sub.complete();
          const d = Math.min(cap, initial * factor ** attempt++);
          timer = setTimeout(() => void connect(), Math.random() * d);
        };
      };
      void connect();
      return () => {
        stopped = true;
        clearTimeout(timer);
        sock?.close(1000);
      };
    });
  }
}
