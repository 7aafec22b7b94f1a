/**
 * The ingest's publisher: every drained batch goes to JetStream (wire.ts)
 * without ever making the drain wait.
 *
 * - `offer` (called by the drain loop, synchronous and cheap) cuts a batch
 *   into messages and queues them. The queue is bounded in bytes
 *   (`nats.maxPendingBytes`, queued and unacknowledged together): a message
 *   that does not fit is dropped, its events counted
 *   (`evbridge_nats_events_dropped_total{reason="queue_full"}`), and one
 *   small `gap` message per run of drops takes its place once there is room,
 *   so edges tell their subscribers exactly which seqs are missing.
 * - At most `nats.maxInflightMessages` messages are published and not yet
 *   acknowledged; acknowledgements are awaited asynchronously.
 * - Order and exactly-once: each message names its predecessor
 *   (`Nats-Expected-Last-Msg-Id`) and carries its own id. When a publish
 *   fails (no acknowledgement in `nats.ackTimeoutMs`, no connection, the
 *   stream refusing it), everything from the first unacknowledged message
 *   on is published again, in order, after a backoff (250 ms doubling to
 *   5 s): a message that had been stored is then acknowledged as a
 *   duplicate and not stored twice, and one that had not is stored in its
 *   place. So the stream holds every published seq once, in seq order.
 *
 * Threading: main thread. Memory: the queue's bytes (bounded) plus one gap
 * entry per run of drops.
 */
import { type NatsConnection, headers } from '@nats-io/transport-node';
import { type JetStreamClient, type JetStreamManager, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { EventBatch } from '../batch.js';
import type { Config } from '../config.js';
import { Errors } from '../errors.js';
import { type EpochMeta, HDR, RECORD_ABI, type RetryReason, metaStream, metaSubject, msgId } from './wire.js';


/** What the publisher counts (metrics.ts implements it). */
export interface PublisherMetrics {
  natsPublished(messages: number, events: number): void;
  natsDuplicate(): void;
  natsDropped(reason: 'queue_full' | 'shutdown', events: number): void;
  natsRetry(reason: RetryReason): void;
  natsPending(messages: number, bytes: number): void;
}

interface Entry {
  readonly type: 'events' | 'gap';
  readonly firstSeq: number;
  /** Seqs covered (a gap grows while drops continue). */
  count: number;
  readonly data: Uint8Array;
  /** Bytes counted against the queue bound. */
  readonly bytes: number;
  id: string;
  /** The previous entry's id, or undefined for the epoch's first. */
  readonly prevId: string | undefined;
  /** Published in this generation and not yet answered. */
  sentIn: number;
  acked: boolean;
}

/** Bytes a gap entry is counted as. */
const GAP_BYTES = 256;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 5000;

/** The error JetStream returns for a failed `Nats-Expected-Last-Msg-Id` check. */
const WRONG_LAST_MSG_ID = 10070;

function retryReason(err: unknown): RetryReason {
  const e = err as { code?: string; message?: string; api_error?: { err_code?: number } };
  const text = `${e.code ?? ''} ${e.message ?? ''}`.toLowerCase();
  if (e.api_error?.err_code === WRONG_LAST_MSG_ID || /last msg ?id|wrong last/.test(text)) return 'out_of_order';
  if (/timeout/.test(text)) return 'timeout';
  if (/503|no responders|disconnect|closed|connection/.test(text)) return 'no_connection';
  return 'refused';
}

/**
 * Connects to NATS, makes sure both streams exist, publishes the epoch's
 * engine description.
 * @throws EvbError EVB_ERR_NATS with one sentence: servers unreachable, a stream of another shape, a refusal.
 */
export async function connectIngest(nc: NatsConnection, cfg: Config['nats'], meta: EpochMeta): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const ensure = async (name: string, subject: string, extra: Record<string, unknown>) => {
    try {
      const info = await jsm.streams.info(name);
      if (!info.config.subjects?.includes(subject)) {
        throw Errors.EVB_ERR_NATS(`stream ${name} exists without subject ${subject} (its subjects: ${info.config.subjects?.join(', ')}); give another nats.stream or nats.subject`);
      }
    } catch (err) {
      if ((err as { code?: string }).code === 'EVB_ERR_NATS') throw err;
      if (!/not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add({
        name,
        subjects: [subject],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        num_replicas: cfg.replicas,
        duplicate_window: 120_000_000_000, // 2 min, ns: covers every republish
        ...extra,
      });
    }
  };
  await ensure(cfg.stream, cfg.subject, { max_bytes: cfg.maxBytes, max_age: cfg.maxAgeSeconds * 1e9 });
  await ensure(metaStream(cfg.stream), metaSubject(cfg.subject), { max_msgs_per_subject: 1 });
  await js.publish(metaSubject(cfg.subject), JSON.stringify(meta), { timeout: cfg.ackTimeoutMs });
  return { js, jsm };
}

export class JetStreamPublisher {
  private readonly queue: Entry[] = [];
  private bytes = 0;
  /** Index in `queue` of the next entry to publish. */
  private next = 0;
  private generation = 0;
  private backoffMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Id of the newest entry queued, for the next one's `prevId`. */
  private lastId: string | undefined;

  constructor(
    private readonly js: JetStreamClient,
    private readonly cfg: Config['nats'],
    private readonly epoch: string,
    private readonly metrics: PublisherMetrics,
    private readonly log: Logger,
  ) {}

  /** Messages and bytes queued or unacknowledged. */
  get pending(): { messages: number; bytes: number } {
    return { messages: this.queue.length, bytes: this.bytes };
  }

  /** Queues a drained batch (never blocks; drops and counts past the bound). */
  offer(b: EventBatch) {
    if (this.closed) return this.metrics.natsDropped('shutdown', b.count);
    const maxEvents = this.cfg.messageMaxEvents;
    const maxBytes = this.cfg.messageMaxBytes;
    let start = 0;
    while (start < b.count) {
      let end = start + 1;
      while (end < b.count && end - start < maxEvents && (b.offsets[end + 1] as number) - (b.offsets[start] as number) <= maxBytes) end++;
      const data = b.bytes.subarray(b.offsets[start] as number, b.offsets[end] as number);
      this.enqueue(b.firstSeq + start, end - start, data);
      start = end;
    }
    this.metrics.natsPending(this.queue.length, this.bytes);
    this.pump();
  }

  /**
   * Queues one message of events, or drops it. Drops are held as one range
   * (`held`) outside the queue until there is room for a gap message, which
   * then goes into the queue ahead of the next events, so that the queue
   * never passes `nats.maxPendingBytes` and the stream stays in seq order.
   */
  private enqueue(firstSeq: number, count: number, data: Uint8Array) {
    const max = this.cfg.maxPendingBytes;
    const gapBytes = this.held ? GAP_BYTES : 0;
    if (this.bytes + gapBytes + data.byteLength > max) {
      this.metrics.natsDropped('queue_full', count);
      if (this.held) this.held.count += count;
      else this.held = { firstSeq, count };
      return;
    }
    this.flushHeld();
    this.push('events', firstSeq, count, data, data.byteLength);
  }

  /** Drops not yet in the queue: one run of seqs. */
  private held: { firstSeq: number; count: number } | undefined;

  /** Queues the held drops as a gap message, when there is room for it. */
  private flushHeld() {
    if (!this.held || this.bytes + GAP_BYTES > this.cfg.maxPendingBytes) return;
    this.push('gap', this.held.firstSeq, this.held.count, new Uint8Array(0), GAP_BYTES);
    this.held = undefined;
  }

  private push(type: Entry['type'], firstSeq: number, count: number, data: Uint8Array, bytes: number) {
    const id = msgId(this.epoch, firstSeq);
    this.queue.push({ type, firstSeq, count, data, bytes, id, prevId: this.lastId, sentIn: 0, acked: false });
    this.lastId = id;
    this.bytes += bytes;
  }

  /** Publishes queued entries while fewer than maxInflightMessages await an answer. */
  private pump() {
    if (this.retryTimer) return; // backing off
    while (this.next < this.queue.length && this.next < this.cfg.maxInflightMessages) {
      this.publish(this.queue[this.next] as Entry);
      this.next++;
    }
  }

  private publish(e: Entry) {
    const gen = this.generation;
    e.sentIn = gen + 1;
    const h = headers();
    h.set(HDR.type, e.type);
    h.set(HDR.epoch, this.epoch);
    h.set(HDR.firstSeq, String(e.firstSeq));
    h.set(HDR.count, String(e.count));
    h.set(HDR.recordAbi, RECORD_ABI);
    this.js
      .publish(this.cfg.subject, e.data, {
        msgID: e.id,
        headers: h,
        timeout: this.cfg.ackTimeoutMs,
        ...(e.prevId !== undefined ? { expect: { lastMsgID: e.prevId } } : {}),
      })
      .then(
        (ack) => {
          if (e.acked) return;
          e.acked = true;
          if (ack.duplicate) this.metrics.natsDuplicate();
          this.settle();
        },
        (err: unknown) => {
          if (e.acked || gen !== this.generation) return; // already being sent again
          this.failed(err);
        },
      );
  }

  /** Removes acknowledged entries from the head; publishes more. */
  private settle() {
    let messages = 0;
    let events = 0;
    while (this.queue.length && (this.queue[0] as Entry).acked) {
      const e = this.queue.shift() as Entry;
      this.next--;
      this.bytes -= e.bytes;
      if (e.type === 'events') {
        messages++;
        events += e.count;
      }
    }
    if (messages) this.metrics.natsPublished(messages, events);
    this.backoffMs = 0;
    this.flushHeld();
    this.metrics.natsPending(this.queue.length, this.bytes);
    this.pump();
    if (this.queue.length === 0 && !this.held) this.idle?.();
  }

  /** A publish failed: from the first unacknowledged entry on, send again after a backoff. */
  private failed(err: unknown) {
    const reason = retryReason(err);
    this.metrics.natsRetry(reason);
    this.generation++;
    this.next = 0;
    for (const e of this.queue) if (!e.acked) e.sentIn = 0;
    // Acknowledged entries behind an unacknowledged one are sent again too
    // (they come back as duplicates): order is what the chain protects.
    let i = 0;
    while (i < this.queue.length && (this.queue[i] as Entry).acked) i++;
    for (let k = i; k < this.queue.length; k++) (this.queue[k] as Entry).acked = false;
    this.next = i;
    this.backoffMs = Math.min(BACKOFF_MAX_MS, this.backoffMs ? this.backoffMs * 2 : BACKOFF_FIRST_MS);
    if (this.backoffMs >= 1000 || reason !== 'timeout') {
      this.log.warn({ reason, err: (err as Error).message, pendingMessages: this.queue.length, pendingBytes: this.bytes, retryInMs: this.backoffMs }, 'NATS publish failed: publishing again from the first unacknowledged message');
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, this.backoffMs);
  }

  private idle: (() => void) | undefined;

  /**
   * Stops taking batches and waits (at most `timeoutMs`) until everything
   * queued is acknowledged; what is left is counted as dropped (`shutdown`).
   */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.queue.length || this.held) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.idle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    clearTimeout(this.retryTimer);
    const left = this.queue.filter((e) => e.type === 'events' && !e.acked).reduce((n, e) => n + e.count, 0);
    if (left) {
      this.metrics.natsDropped('shutdown', left);
      this.log.warn({ events: left }, 'NATS: events still unacknowledged at shutdown');
    }
    this.queue.length = 0;
    this.bytes = 0;
  }
}
