/**
 * How events travel through NATS JetStream between an ingest and its edges.
 *
 * Events: stream `nats.stream`, subject `nats.subject`. One message carries
 * a run of consecutive events of one epoch, at most `nats.messageMaxEvents`
 * and `nats.messageMaxBytes`: the body is the ring records themselves (the
 * layout of protocol/records.ts, which is also the binary protocol's), so
 * an edge serves them without parsing or copying per event. Headers:
 *
 * | header | value |
 * | --- | --- |
 * | `Nats-Msg-Id` | `<epoch>:<first seq>`: JetStream drops a republished duplicate within the stream's duplicate window |
 * | `Nats-Expected-Last-Msg-Id` | the previous message's id (not on an epoch's first): the stream refuses a message that would land out of order |
 * | `Evb-Type` | `events`, or `gap`: seqs the ingest could not publish (body empty) |
 * | `Evb-Epoch` | the ingest run's epoch |
 * | `Evb-First-Seq`, `Evb-Count` | the first seq and how many seqs the message covers |
 * | `Evb-Record-Abi` | the record layout's ABI version (NATIVE_LAYOUT.abi_version); an edge refuses another |
 *
 * The engine description: stream `<stream>_META`, subject `<subject>.meta`,
 * one message kept (`max_msgs_per_subject` 1), published by the ingest at
 * start: JSON of `EpochMeta`.
 *
 * What this layout costs and allows: one message per run of events (256 by
 * default), so JetStream's per-message cost is shared (bench/RESULTS.md);
 * edges read every message and filter as a single daemon does (the same
 * per-filter cost), so an edge cannot ask JetStream for one kind only. The
 * expected-last-id chain keeps the stream in seq order with no duplicate,
 * which is what lets a client resume exactly once on any edge.
 */
import type { MsgHdrs } from '@nats-io/transport-node';
import type { EngineDescription } from '../engine.js';
import { NATIVE_LAYOUT } from '../../protocol/layout.js';

export const HDR = {
  type: 'Evb-Type',
  epoch: 'Evb-Epoch',
  firstSeq: 'Evb-First-Seq',
  count: 'Evb-Count',
  recordAbi: 'Evb-Record-Abi',
} as const;

/** The record layout version an events message carries. */
export const RECORD_ABI = String(NATIVE_LAYOUT.abi_version);

/** The id JetStream deduplicates on. */
export const msgId = (epoch: string, firstSeq: number) => `${epoch}:${firstSeq}`;

/** What the ingest says about its run (the `<subject>.meta` message). */
export interface EpochMeta {
  epoch: string;
  /** The ingest's wall clock minus CLOCK_MONOTONIC, ns, as a decimal string (clock.ts). */
  wallMinusMonoNs: string;
  engine: Pick<EngineDescription, 'name' | 'version' | 'kinds' | 'sources' | 'path'>;
  /** Record layout ABI version. */
  recordAbi: string;
  /** Unix ms. */
  startedAt: number;
}

/** Why the ingest published again from its first unacknowledged message. */
export const RETRY_REASONS = ['timeout', 'no_connection', 'out_of_order', 'refused'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

export const metaSubject = (subject: string) => `${subject}.meta`;
export const metaStream = (stream: string) => `${stream}_META`;

/** The fields of an events or gap message's headers; null when they are missing or malformed. */
export function readHeaders(h: MsgHdrs | undefined): { type: 'events' | 'gap'; epoch: string; firstSeq: number; count: number; recordAbi: string } | null {
  if (!h) return null;
  const type = h.get(HDR.type);
  const epoch = h.get(HDR.epoch);
  const firstSeq = Number(h.get(HDR.firstSeq));
  const count = Number(h.get(HDR.count));
  if ((type !== 'events' && type !== 'gap') || !epoch || !Number.isSafeInteger(firstSeq) || firstSeq < 1 || !Number.isSafeInteger(count) || count < 1) return null;
  return { type, epoch, firstSeq, count, recordAbi: h.get(HDR.recordAbi) };
}
