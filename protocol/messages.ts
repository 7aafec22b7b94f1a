/**
 * evbridge wire protocol v1: message types shared by the daemon and clients.
 * `PROTOCOL.md` beside this file is the specification; this module is its
 * TypeScript form. Client messages are validated with zod schemas.
 */
import { z } from 'zod';

/** Protocol version carried in the hello. */
export const PROTOCOL_VERSION = 1;

/** WebSocket subprotocol names. */
export const SUBPROTOCOL_JSON = 'evbridge.v1.json';
export const SUBPROTOCOL_BINARY = 'evbridge.v1.binary';

/** Event kinds by name, and the engine's numbers for them. */
export const KIND_NAMES = ['udp', 'tick', 'gen'] as const;
export type KindName = (typeof KIND_NAMES)[number];
export const KIND_NUMBER: Record<KindName, number> = { udp: 1, tick: 2, gen: 3 };
export const KIND_BY_NUMBER: ReadonlyMap<number, KindName> = new Map(
  KIND_NAMES.map((k) => [KIND_NUMBER[k], k]),
);

/** WebSocket close codes the daemon uses (RFC 6455 and the 4000 range). */
export const CloseCode = {
  /** Daemon shutting down. */
  goingAway: 1001,
  /** Client frame larger than the limit (sent by ws itself). */
  messageTooBig: 1009,
  /** Slow consumer: queue past its hard limit, or a write stalled. */
  slowConsumer: 4008,
  /** Too many malformed frames in a row. */
  protocolAbuse: 4009,
} as const;

/** Error codes carried in error frames. */
export const ErrorCode = {
  badJson: 'bad_json',
  badMessage: 'bad_message',
  unknownSubscription: 'unknown_subscription',
  duplicateSubscription: 'duplicate_subscription',
  tooManySubscriptions: 'too_many_subscriptions',
  unsupportedFrame: 'unsupported_frame',
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Why events were skipped for a subscription, as told in a gap notice. */
export type GapReason = 'slow_consumer' | 'out_of_window' | 'new_epoch';

const subId = z.string().min(1).max(64);

/** Client to server: start a subscription. Omitted filters match everything. */
export const SubscribeSchema = z
  .object({
    type: z.literal('subscribe'),
    id: subId,
    kinds: z.array(z.enum(KIND_NAMES)).min(1).max(KIND_NAMES.length).optional(),
    sources: z.array(z.number().int().min(0).max(0xffffffff)).min(1).max(1024).optional(),
    /** Resume: the first sequence number wanted, inclusive. */
    from_seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    /** The epoch `from_seq` belongs to (from an earlier hello). */
    epoch: z.string().min(1).max(64).optional(),
  })
  .strict();

/** Client to server: end a subscription. */
export const UnsubscribeSchema = z.object({ type: z.literal('unsubscribe'), id: subId }).strict();

export const ClientMessageSchema = z.discriminatedUnion('type', [SubscribeSchema, UnsubscribeSchema]);
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
  /** Wall-clock time of the event, Unix milliseconds (derived at drain). */
  time: number;
  /** Payload bytes, base64. */
  payload: string;
}

export interface HelloMessage {
  type: 'hello';
  protocol: typeof PROTOCOL_VERSION;
  server: string;
  /** Names this daemon run's sequence space; a restart starts a new epoch. */
  epoch: string;
  /** How `events` arrive: JSON text frames, or binary frames (PROTOCOL.md). */
  encoding: 'json' | 'binary';
  kinds: readonly KindName[];
  limits: { max_frame_bytes: number; max_subscriptions: number; batch_max_events: number };
}
export interface SubscribedMessage {
  type: 'subscribed';
  id: string;
  kinds: readonly KindName[] | null;
  sources: readonly number[] | null;
  /** Sequence number of the first live event this subscription can receive. */
  next_seq: number;
  /** Events replayed from the replay window ahead of the live ones. */
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
  /** Subscription the error concerns, when there is one. */
  id?: string;
}

export type ServerMessage =
  | HelloMessage
  | SubscribedMessage
  | UnsubscribedMessage
  | EventsMessage
  | GapMessage
  | ErrorMessage;
