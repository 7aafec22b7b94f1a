/**
 * The edge's source of events: an ordered JetStream consumer over the
 * ingest's stream (wire.ts), turned into the same EventBatch stream a
 * drained ring gives, plus the two things only an edge meets: a new epoch
 * (an ingest restart) and gaps (seqs the ingest could not publish).
 *
 * Checks on every message, so that nothing from NATS can take the edge
 * down: headers present and well-formed; the record layout version equal
 * to this build's; the body exactly `count` records back to back, each
 * inside the body, aligned, with the seq it should have. A message that
 * fails is skipped, counted (`evbridge_edge_messages_invalid_total`),
 * logged at most once per 10 s, and its seqs become a gap.
 *
 * Epochs: the edge serves the epoch named by the `<subject>.meta` message.
 * Messages of another epoch met while reading history are skipped; a
 * message of a newer epoch makes the edge read the meta message again and,
 * when it names that epoch, adopt it (`onEpoch`).
 *
 * Threading: main thread; the consumer is an async iterator.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { type JetStreamClient, type JetStreamManager, type JsMsg, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { EventBatch } from '../batch.js';
import type { Config } from '../config.js';
import { RECORD_ALIGN, RECORD_HEADER, REC } from '../../protocol/records.js';
import { type EpochMeta, RECORD_ABI, metaStream, metaSubject, readHeaders } from './wire.js';

export interface SourceHandlers {
  /** A new epoch to serve (the first one too). */
  onEpoch(meta: EpochMeta): void;
  onBatch(b: EventBatch): void;
  /** Seqs `[from, to]` of the current epoch will never come. */
  onGap(from: number, to: number): void;
}

/** What the source counts (metrics.ts implements it). */
export interface SourceMetrics {
  edgeConsumed(messages: number, events: number): void;
  edgeInvalid(): void;
  edgeDuplicate(): void;
  edgeGap(events: number): void;
  edgeLag(messages: number, seconds: number): void;
}

/** Why the body of an events message is unusable, or null. */
export function checkRecords(body: Buffer, firstSeq: number, count: number): string | null {
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + RECORD_HEADER > body.length) return `record ${i} starts past the body`;
    const len = body.readUInt32LE(off + REC.recordLen);
    if (len < RECORD_HEADER || len % RECORD_ALIGN !== 0 || off + len > body.length) return `record ${i} has length ${len}`;
    if (RECORD_HEADER + body.readUInt32LE(off + REC.payloadLen) + body.readUInt32LE(off + REC.subjectLen) > len) return `record ${i}'s payload and subject overrun it`;
    if (Number(body.readBigUInt64LE(off + REC.seq)) !== firstSeq + i) return `record ${i} has seq ${body.readBigUInt64LE(off + REC.seq)}, not ${firstSeq + i}`;
    off += len;
  }
  return off === body.length ? null : `${body.length - off} bytes after the last record`;
}

export class JetStreamSource {
  private js: JetStreamClient;
  private jsm!: JetStreamManager;
  private epoch: string | undefined;
  private lastSeq = 0;
  private stopped = false;
  private invalidLogged = 0;
  /** Caught up with the stream at least once since start. */
  caughtUp = false;
  /** The epoch's description, once adopted. */
  meta: EpochMeta | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly cfg: Config['nats'],
    private readonly handlers: SourceHandlers,
    private readonly metrics: SourceMetrics,
    private readonly log: Logger,
  ) {
    this.js = jetstream(nc);
  }

  /** The meta message now, or undefined when there is none yet. */
  private async readMeta(): Promise<EpochMeta | undefined> {
    try {
      const m = await this.jsm.streams.getMessage(metaStream(this.cfg.stream), { last_by_subj: metaSubject(this.cfg.subject) });
      return m ? (m.json() as EpochMeta) : undefined;
    } catch (err) {
      if (/not found/i.test((err as Error).message)) return undefined;
      throw err;
    }
  }

  private async adopt(meta: EpochMeta): Promise<boolean> {
    if (meta.recordAbi !== RECORD_ABI) {
      this.log.error({ ingest: meta.recordAbi, edge: RECORD_ABI, epoch: meta.epoch }, `the ingest writes records of layout ABI ${meta.recordAbi}, this edge reads ${RECORD_ABI}: not serving its epoch (run the same evbridge version on both)`);
      return false;
    }
    this.epoch = meta.epoch;
    this.meta = meta;
    this.lastSeq = 0;
    this.handlers.onEpoch(meta);
    this.log.info({ epoch: meta.epoch, engine: meta.engine.name }, 'edge: serving the ingest\'s epoch');
    return true;
  }

  /**
   * Waits for the streams and the meta message (retrying every second,
   * logging once), then consumes until `stop`. Resolves when stopped.
   */
  async run(): Promise<void> {
    this.jsm = await jetstreamManager(this.nc);
    let said = false;
    let meta: EpochMeta | undefined;
    while (!this.stopped) {
      meta = await this.readMeta().catch(() => undefined);
      if (meta) break;
      if (!said) this.log.warn({ stream: this.cfg.stream }, 'edge: no ingest has published to the stream yet; waiting');
      said = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (!meta || this.stopped) return;
    await this.adopt(meta);
    const info = await this.jsm.streams.info(this.cfg.stream);
    const target = info.state.last_seq;
    if (target === 0) this.caughtUp = true;
    // Stream seq of the last message handled: a consumer made again starts after it.
    let streamSeq = 0;
    while (!this.stopped) {
      try {
        streamSeq = await this.consumeOnce(streamSeq, target);
      } catch (err) {
        this.log.warn({ err: (err as Error).message, streamSeq }, 'edge: JetStream consumer failed; making it again');
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * One ordered consumer from stream seq `after + 1`, until it is stopped
   * or its server stops answering (two heartbeats missed in a row: its
   * server died; the caller makes a new one on a live server).
   * @returns the stream seq of the last message handled.
   */
  private async consumeOnce(after: number, target: number): Promise<number> {
    const consumer = await this.js.consumers.get(
      this.cfg.stream,
      after > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 } : { deliver_policy: DeliverPolicy.All },
    );
    // Pull requests expire after 5 s (the library's default is 30 s), so a
    // consumer whose server died is noticed within seconds.
    const messages = await consumer.consume({ max_messages: 256, expires: 5000 });
    this.stopMessages = () => messages.stop();
    void (async () => {
      for await (const s of messages.status()) {
        if (s.type === 'heartbeats_missed' && s.count >= 2) {
          this.log.warn({ type: s.type, streamSeq: after }, 'edge: JetStream consumer stopped answering; making it again');
          messages.stop();
          return;
        }
        if (s.type === 'ordered_consumer_recreated' || s.type === 'reset' || s.type === 'consumer_not_found' || s.type === 'stream_not_found') {
          this.log.warn({ type: s.type }, 'edge: JetStream consumer notice');
        }
      }
    })().catch(() => {});
    let seq = after;
    for await (const m of messages) {
      if (this.stopped) break;
      await this.handle(m);
      seq = m.seq;
      if (!this.caughtUp && m.seq >= target) {
        this.caughtUp = true;
        this.log.info({ streamSeq: m.seq, lastSeq: this.lastSeq }, 'edge: caught up with the stream');
      }
      this.metrics.edgeLag(m.info.pending, Math.max(0, (Date.now() * 1e6 - m.info.timestampNanos) / 1e9));
    }
    return seq;
  }

  private stopMessages: (() => void) | undefined;

  stop() {
    this.stopped = true;
    this.stopMessages?.();
  }

  private invalid(why: string, h: { firstSeq: number; count: number } | null) {
    this.metrics.edgeInvalid();
    const now = Date.now();
    if (now - this.invalidLogged > 10_000) {
      this.invalidLogged = now;
      this.log.error({ why }, 'edge: unusable message from NATS skipped');
    }
    if (h && h.firstSeq > this.lastSeq) this.gap(h.firstSeq, h.firstSeq + h.count - 1);
  }

  private gap(from: number, to: number) {
    from = Math.max(from, this.lastSeq + 1);
    if (to < from) return;
    this.metrics.edgeGap(to - from + 1);
    this.lastSeq = to;
    this.handlers.onGap(from, to);
  }

  private async handle(m: JsMsg) {
    const h = readHeaders(m.headers);
    if (!h) return this.invalid('missing or malformed Evb-* headers', null);
    if (h.epoch !== this.epoch) {
      const meta = await this.readMeta().catch(() => undefined);
      if (!meta || meta.epoch !== h.epoch) return; // history of an older epoch
      if (!(await this.adopt(meta))) return;
    }
    if (h.recordAbi !== RECORD_ABI) return this.invalid(`record layout ABI ${h.recordAbi}, this edge reads ${RECORD_ABI}`, h);
    const last = h.firstSeq + h.count - 1;
    if (last <= this.lastSeq) {
      this.metrics.edgeDuplicate();
      return;
    }
    if (this.lastSeq > 0 && h.firstSeq > this.lastSeq + 1) this.gap(this.lastSeq + 1, h.firstSeq - 1);
    if (h.type === 'gap') return this.gap(h.firstSeq, last);
    const body = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    const bad = checkRecords(body, h.firstSeq, h.count);
    if (bad) return this.invalid(bad, h);
    if (h.firstSeq <= this.lastSeq) return this.invalid('overlaps events already served', h);
    this.lastSeq = last;
    this.metrics.edgeConsumed(1, h.count);
    this.handlers.onBatch(new EventBatch(body, h.count, h.firstSeq));
  }
}
