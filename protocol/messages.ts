/**
 * evbridge wire protocol v1: message types shared by the daemon and clients.
 * `PROTOCOL.md` beside this file is the specification; this module is its
 * TypeScript form. Client messages are validated with zod schemas; every
 * length limit is in bytes of UTF-8 and is checked here, where a value
 * enters.
 */
import { z } from 'zod';
import { KIND_MAX, KIND_NAME_MAX } from './records.js';
import { compilePattern } from './subjects.js';

/** Protocol version carried in the hello. */
export const PROTOCOL_VERSION = 1;
/** Revision of protocol v1 (additions that old clients can ignore); in the hello. */
export const PROTOCOL_REVISION = 5;
/** Optional features of this revision, listed in the hello. */
export const FEATURES = ['subjects', 'engine_kinds', 'token_refresh', 'edge', 'rows'] as const;

/** How a JSON subscription's events are written: objects with named
 * fields, or rows (arrays of the same fields in a fixed order). */
export const EVENT_FORMATS = ['objects', 'rows'] as const;
export type EventFormat = (typeof EVENT_FORMATS)[number];
/** The fields of a row, in order; `subject` only when the event has one. */
export const ROW_FIELDS = ['seq', 'kind', 'source', 'source_seq', 'ts', 'time', 'payload', 'subject'] as const;

/** WebSocket subprotocol names. */
export const SUBPROTOCOL_JSON = 'evbridge.v1.json';
export const SUBPROTOCOL_BINARY = 'evbridge.v1.binary';

/** An event kind's name: 1 to 32 characters of `[a-z0-9_]`, declared by the engine. */
export type KindName = string;

/** Longest subscription id, bytes of UTF-8. */
export const SUB_ID_MAX_BYTES = 64;
/** Longest epoch string, bytes. */
export const EPOCH_MAX_BYTES = 64;
/** Longest access token, bytes (in the Authorization header, the
 * access_token query parameter or a refresh message). */
export const TOKEN_MAX_BYTES = 8192;
/** Most kinds, sources and subject patterns one subscription may list. */
export const FILTER_LIMITS = { kinds: KIND_MAX + 1, sources: 1024, subjects: 16 } as const;

/** WebSocket close codes the daemon uses (RFC 6455 and the 4000 range). */
export const CloseCode = {
  /** Daemon shutting down. */
  goingAway: 1001,
  /** Client frame larger than the limit (sent by ws itself). */
  messageTooBig: 1009,
  /** The daemon failed while serving this connection (its error is logged). */
  internalError: 1011,
  /** Slow consumer: queue past its hard limit, or a write stalled. */
  slowConsumer: 4008,
  /** Too many unusable client frames in a row. */
  protocolAbuse: 4009,
  /** Subscribes and unsubscribes faster than `ws.maxSubscribesPerSecond`. */
  rateLimited: 4010,
  /** The connection's JWT expired and no refresh replaced it in time. */
  tokenExpired: 4011,
  /** Edge role: the ingest restarted (a new epoch); reconnect and resume (RFC 6455 "Service Restart"). */
  serviceRestart: 1012,
} as const;

/** Error codes carried in error frames. */
export const ErrorCode = {
  badJson: 'bad_json',
  badMessage: 'bad_message',
  unknownSubscription: 'unknown_subscription',
  duplicateSubscription: 'duplicate_subscription',
  tooManySubscriptions: 'too_many_subscriptions',
  tooManyFilters: 'too_many_filters',
  unknownKind: 'unknown_kind',
  unsupportedFrame: 'unsupported_frame',
  /** The subscription asks for more than the connection's token allows. */
  forbidden: 'forbidden',
  /** A refresh token was refused (the connection keeps its current token). */
  refreshRefused: 'refresh_refused',
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Why events were skipped for a subscription, as told in a gap notice. */
export type GapReason = 'slow_consumer' | 'out_of_window' | 'new_epoch' | 'ingest_dropped';

const utf8 = new TextEncoder();
const bytes = (s: string) => utf8.encode(s).length;

/** 1 to 64 bytes of UTF-8. */
const subId = z
  .string()
  .min(1)
  .refine((s) => bytes(s) <= SUB_ID_MAX_BYTES, `must be 1 to ${SUB_ID_MAX_BYTES} bytes of UTF-8`);
const kindName = z.string().regex(new RegExp(`^[a-z0-9_]{1,${KIND_NAME_MAX}}$`), `must be 1 to ${KIND_NAME_MAX} characters of [a-z0-9_]`);
const pattern = z.string().superRefine((p, ctx) => {
  const c = compilePattern(p);
  if (typeof c === 'string') ctx.addIssue({ code: 'custom', message: `pattern "${p}" ${c}` });
});

/** Client to server: start a subscription. Omitted filters match everything. */
export const SubscribeSchema = z
  .object({
    type: z.literal('subscribe'),
    id: subId,
    kinds: z.array(kindName).min(1).max(FILTER_LIMITS.kinds).optional(),
    sources: z.array(z.number().int().min(0).max(0xffffffff)).min(1).max(FILTER_LIMITS.sources).optional(),
    /** Subject patterns (NATS wildcards); an event matches when its subject matches any. */
    subjects: z.array(pattern).min(1).max(FILTER_LIMITS.subjects).optional(),
    /** Resume: the first sequence number wanted, inclusive. */
    from_seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    /** The epoch `from_seq` belongs to (from an earlier hello). */
    epoch: z
      .string()
      .min(1)
      .refine((s) => bytes(s) <= EPOCH_MAX_BYTES, `must be 1 to ${EPOCH_MAX_BYTES} bytes`)
      .optional(),
    /** JSON subprotocol only: each event an object (the default) or a row
     * (`[seq, kind, source, source_seq, ts, time, payload, subject?]`). */
    format: z.enum(EVENT_FORMATS).optional(),
  })
  .strict();

/** Client to server: end a subscription. */
export const UnsubscribeSchema = z.object({ type: z.literal('unsubscribe'), id: subId }).strict();

/** Client to server: replace the connection's JWT before it expires. */
export const RefreshSchema = z
  .object({
    type: z.literal('refresh'),
    token: z
      .string()
      .min(1)
      .refine((s) => bytes(s) <= TOKEN_MAX_BYTES, `must be 1 to ${TOKEN_MAX_BYTES} bytes`),
  })
  .strict();

export const ClientMessageSchema = z.discriminatedUnion('type', [SubscribeSchema, UnsubscribeSchema, RefreshSchema]);
export type RefreshMessage = z.infer<typeof RefreshSchema>;
export type SubscribeMessage = z.infer<typeof SubscribeSchema>;
export type UnsubscribeMessage = z.infer<typeof UnsubscribeSchema>;
export type ClientMessage = z.infer<typeof ClientMessageSchema>;

/** One event as sent in JSON. */
export interface WireEvent {
  /** Global sequence number, dense, starting at 1. */
  seq: number;
  kind: KindName;
  source: number;
  /** Per-source sequence number. */
  source_seq: number;
  /** Engine timestamp, CLOCK_MONOTONIC nanoseconds, as a decimal string (u64). */
  ts: string;
  /** Wall-clock time of the event, Unix milliseconds, rounded to the nearest. */
  time: number;
  /** Payload bytes, base64. */
  payload: string;
  /** The event's subject; absent when it has none. */
  subject?: string;
}

/** An engine kind, by name and number (binary records carry the number). */
export interface KindInfo {
  name: KindName;
  number: number;
}

/** What the hello says about the engine. */
export interface EngineInfo {
  name: string;
  version: string;
  kinds: KindInfo[];
  sources: { id: number; kind: KindName; name: string; detail: string }[];
}

export interface HelloMessage {
  type: 'hello';
  protocol: typeof PROTOCOL_VERSION;
  /** Additions to v1 this daemon has (PROTOCOL.md, "Versioning"). */
  revision: number;
  features: readonly string[];
  server: string;
  /** Names this daemon run's sequence space; a restart starts a new epoch. */
  epoch: string;
  /** How `events` arrive: JSON text frames, or binary frames (PROTOCOL.md). */
  encoding: 'json' | 'binary';
  /** The engine's kind names. */
  kinds: readonly KindName[];
  engine: EngineInfo;
  limits: {
    max_frame_bytes: number;
    max_subscriptions: number;
    batch_max_events: number;
    max_subscribes_per_second: number;
  };
  /** With JWT access: who the token names, when it expires (Unix seconds)
   * and what it allows (null in a dimension: unrestricted). */
  auth?: AuthInfo;
}
export interface AuthInfo {
  mode: 'none' | 'token' | 'jwt';
  sub: string | null;
  exp: number | null;
  rights: { kinds: readonly string[] | null; sources: readonly number[] | null; subjects: readonly string[] | null } | null;
}
/** A refresh was accepted: the connection now expires at `exp`. */
export interface RefreshedMessage {
  type: 'refreshed';
  exp: number | null;
  rights: AuthInfo['rights'];
}
export interface SubscribedMessage {
  type: 'subscribed';
  id: string;
  kinds: readonly KindName[] | null;
  sources: readonly number[] | null;
  subjects: readonly string[] | null;
  /** How its events are written: `objects`, `rows`, or `binary` on the binary subprotocol. */
  format: EventFormat | 'binary';
  /** Sequence number of the first live event this subscription can receive. */
  next_seq: number;
  /** Events the replay window holds from the resume point up to
   * `next_seq - 1`, before filtering: those of them that match the filter
   * are sent ahead of the live ones (replay is produced as the client reads). */
  replayed: number;
}
export interface UnsubscribedMessage {
  type: 'unsubscribed';
  id: string;
}
export interface EventsMessage {
  type: 'events';
  sub: string;
  events: WireEvent[];
}
export interface GapMessage {
  type: 'gap';
  sub: string;
  /** First and last missed sequence numbers, inclusive. For `new_epoch`,
   * `from` is the client's `from_seq` in its old epoch and `to` is null. */
  from: number;
  to: number | null;
  /** Matching events skipped in that range; null when unknown. */
  dropped: number | null;
  reason: GapReason;
  /** For `new_epoch`: the epoch the client asked about. */
  old_epoch?: string;
}
export interface ErrorMessage {
  type: 'error';
  code: ErrorCodeValue;
  message: string;
  /** The subscription the error concerns: present when the frame named one
   * (a subscribe or unsubscribe with a valid id), absent otherwise. */
  id?: string;
}

export type ServerMessage =
  | HelloMessage
  | SubscribedMessage
  | UnsubscribedMessage
  | EventsMessage
  | GapMessage
  | ErrorMessage
  | RefreshedMessage;

/* Server messages as a client validates them: the fields a client relies on
 * are checked, unknown fields pass (they may be added within v1), and a
 * message type the client does not know is not an error (new types may
 * appear within v1). */
const wireEvent = z.object({
  seq: z.number().int().min(1),
  kind: z.string(),
  source: z.number().int().min(0),
  source_seq: z.number().int().min(0),
  ts: z.string().regex(/^\d+$/),
  time: z.number(),
  payload: z.string(),
  subject: z.string().optional(),
});
/** An event as a row (`"format": "rows"`): ROW_FIELDS in order. */
const rowValues = [z.number().int().min(1), z.string(), z.number().int().min(0), z.number().int().min(0), z.string().regex(/^\d+$/), z.number(), z.string()] as const;
const wireRow = z.union([z.tuple(rowValues), z.tuple([...rowValues, z.string()])]);
/** Gap reasons are open: a reason this client does not know is still a gap
 * (PROTOCOL.md, "Versioning"). */
const gapReason = z.string().min(1);
export const ServerMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('hello'),
    protocol: z.number(),
    epoch: z.string(),
    encoding: z.enum(['json', 'binary']),
    kinds: z.array(z.string()),
    engine: z.object({ kinds: z.array(z.object({ name: z.string(), number: z.number().int() })) }).optional(),
    auth: z.object({ mode: z.string(), sub: z.string().nullable(), exp: z.number().nullable() }).optional(),
  }),
  z.object({ type: z.literal('refreshed'), exp: z.number().nullable() }),
  z.object({ type: z.literal('subscribed'), id: z.string(), next_seq: z.number(), replayed: z.number() }),
  z.object({ type: z.literal('unsubscribed'), id: z.string() }),
  z.object({ type: z.literal('events'), sub: z.string(), events: z.union([z.array(wireEvent), z.array(wireRow)]) }),
  z.object({
    type: z.literal('gap'),
    sub: z.string(),
    from: z.number(),
    to: z.number().nullable(),
    dropped: z.number().nullable(),
    reason: gapReason,
    old_epoch: z.string().optional(),
  }),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string(), id: z.string().optional() }),
]);
