/**
 * EngineHost: the native side of one daemon. It loads the engine plugin
 * through the bridge (`engine.plugin`, or the built-in reference engine),
 * creates the bridge with the plugin's kinds, attaches the bridge's callback
 * to the engine, starts and stops it in the order the native side requires,
 * and reads the counters of both. The drain loop that reads the ring is
 * `drain.ts`.
 *
 * Threading: main thread only. `debug` runs its native call on a worker and
 * is serialised: one at a time, and `close` waits for it.
 */
import type { JsExternal } from 'ffi-rs';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { Errors } from './errors.js';
import { type Native, defaultLibraryPaths } from './native.js';
import { NATIVE_LAYOUT } from '../protocol/layout.js';
import { KindTable, NATIVE_STATUS } from './kinds.js';

export { KindTable, NATIVE_STATUS };
import type { KindInfo } from '../protocol/messages.js';

/** What the plugin says about itself (`evb_engine_describe`). */
export interface EngineDescription {
  path: string;
  name: string;
  version: string;
  abi_version: string;
  kinds: KindInfo[];
  sources: { id: number; kind: string; name: string; detail: string }[];
  counters: { name: string; help: string }[];
  debug: boolean;
  unused_config_keys: string[];
}


type Fields = typeof NATIVE_LAYOUT.structs.evb_stats_t.fields;
export type DropReason = (typeof NATIVE_LAYOUT.drop_reasons)[number];
export type InvalidReason = (typeof NATIVE_LAYOUT.invalid_reasons)[number];

/** The bridge's `evb_stats_t`, decoded. Counts are events; bytes are bytes. */
export interface NativeStats {
  /** Calls into the callback, counted on entry. */
  callbacks: number;
  accepted: number;
  dropped: Record<DropReason, number>;
  panicked: number;
  invalid: Record<InvalidReason, number>;
  stale: number;
  late: number;
  delivered: number;
  ringUsedBytes: number;
  ringCapacityBytes: number;
  /** Per-bucket (not cumulative) callback-delay counts; bounds in `NATIVE_LAYOUT.delay_bounds_ns`. */
  delayCounts: number[];
  delaySumNs: number;
  panicMessagesDropped: number;
}

/** Reads `evb_stats_t` from its bytes, by the generated layout. */
export function decodeStats(b: Buffer): NativeStats {
  const at = (f: readonly [number, number, number], i = 0) => Number(b.readBigUInt64LE(f[0] + 8 * i));
  const f: Fields = NATIVE_LAYOUT.structs.evb_stats_t.fields;
  const list = <K extends string>(names: readonly K[], field: readonly [number, number, number]) =>
    Object.fromEntries(names.map((n, i) => [n, at(field, i)])) as Record<K, number>;
  return {
    callbacks: at(f.callbacks),
    accepted: at(f.accepted),
    dropped: list(NATIVE_LAYOUT.drop_reasons, f.dropped),
    panicked: at(f.panicked),
    invalid: list(NATIVE_LAYOUT.invalid_reasons, f.invalid),
    stale: at(f.stale),
    late: at(f.late),
    delivered: at(f.delivered),
    ringUsedBytes: at(f.ring_used_bytes),
    ringCapacityBytes: at(f.ring_capacity_bytes),
    delayCounts: Array.from({ length: f.delay_count[2] }, (_, i) => at(f.delay_count, i)),
    delaySumNs: at(f.delay_sum_ns),
    panicMessagesDropped: at(f.panic_messages_dropped),
  };
}

/** The configuration block handed to the plugin. For the built-in engine,
 * the daemon's `faultInjection` switch also turns on the engine's own. */
export function pluginConfig(cfg: Config): { path: string; builtIn: boolean; json: string } {
  const builtIn = cfg.engine.plugin === '';
  const block = builtIn && cfg.faultInjection ? { faultInjection: true, ...cfg.engine.config } : cfg.engine.config;
  return { path: builtIn ? defaultLibraryPaths().engine : cfg.engine.plugin, builtIn, json: JSON.stringify(block) };
}

export class EngineHost {
  readonly description: EngineDescription;
  readonly kinds: KindTable;
  /** The bridge (for the drain loop). */
  readonly bridge: JsExternal;
  /** The ring's data area, read in place. */
  readonly ring: Buffer;
  /** The bridge's `evb_drain_t` cell. */
  readonly drainResult: Buffer;
  private readonly engine: JsExternal;
  private readonly statsBuf: Buffer;
  private counterBuf: Buffer | undefined;
  private releaseDoorbell: () => void = () => {};
  private attached = false;
  private started = false;
  private closed = false;
  private debugging: Promise<unknown> | undefined;
  private finalStats: NativeStats | undefined;

  /**
   * Loads the plugin and creates the bridge.
   * @throws EvbError EVB_ERR_PLUGIN (the bridge's message: file and fault) or EVB_ERR_BRIDGE.
   */
  constructor(
    private readonly cfg: Config,
    private readonly native: Native,
    log: Logger,
  ) {
    const plugin = pluginConfig(cfg);
    const engine = native.engineLoad(plugin.path, plugin.json);
    if (native.isNull(engine)) throw Errors.EVB_ERR_PLUGIN(native.statusName(native.lastStatus()), native.lastError());
    this.engine = engine;
    this.description = JSON.parse(native.engineDescribe(engine)) as EngineDescription;
    if (this.description.unused_config_keys.length > 0) {
      log.warn(
        { plugin: this.description.path, keys: this.description.unused_config_keys },
        `engine.config keys that plugin ${this.description.name} did not read (misspelt?): ${this.description.unused_config_keys.join(', ')}`,
      );
    }
    this.kinds = new KindTable(this.description.kinds);
    const r = cfg.ring;
    this.bridge = native.bridgeNew(r.capacityBytes, r.maxPayloadBytes, Math.round(r.lateThresholdMs * 1e6), this.kinds.mask);
    if (native.isNull(this.bridge)) {
      const status = native.statusName(native.lastStatus());
      native.engineFree(engine);
      throw Errors.EVB_ERR_BRIDGE(r.capacityBytes, r.maxPayloadBytes, status);
    }
    this.ring = native.wrap(native.ringData(this.bridge), native.ringCapacity(this.bridge));
    this.drainResult = native.wrap(native.drainResult(this.bridge), NATIVE_LAYOUT.structs.evb_drain_t.size);
    this.statsBuf = native.wrap(native.stats(this.bridge), NATIVE_LAYOUT.structs.evb_stats_t.size);
  }

  /**
   * Attaches the bridge's callback, installs `doorbell`, and starts the
   * engine. With fault injection on, first leaves a retired registration for
   * the engine's stale-call fault.
   * @throws EvbError EVB_ERR_ENGINE_START with the plugin's message.
   */
  start(doorbell: () => void): void {
    const n = this.native;
    const check = (rc: number, what: string) => {
      if (rc !== 0) throw Errors.EVB_ERR_ENGINE_START(`${what}: ${n.describeFailure(rc)}`);
    };
    if (this.cfg.faultInjection && this.description.debug) check(n.engineRetireRegistration(this.engine, this.bridge), 'retire a registration');
    this.releaseDoorbell = n.setDoorbell(this.bridge, doorbell);
    check(n.engineAttach(this.engine, this.bridge), 'attach the bridge');
    this.attached = true;
    check(n.engineStart(this.engine), 'start');
    this.started = true;
  }

  /** True once the engine runs, until `close`. */
  get ready(): boolean {
    return this.started && !this.closed;
  }

  /** Reads the bridge's counters (one FFI call); after `close`, the final ones. */
  stats(): NativeStats {
    if (this.finalStats) return this.finalStats; // the bridge is freed: never touch it
    this.native.stats(this.bridge);
    return decodeStats(this.statsBuf);
  }

  /** The engine's own counters, in the order of `description.counters`;
   * the previous values while a debug command holds the engine. */
  engineCounters(): number[] {
    const names = this.description.counters;
    if (names.length === 0 || this.closed) return names.map(() => 0);
    const p = this.native.engineCounters(this.engine);
    if (!this.native.isNull(p)) this.counterBuf ??= this.native.wrap(p, 8 * names.length);
    const b = this.counterBuf;
    return names.map((_, i) => (b ? Number(b.readBigUInt64LE(8 * i)) : 0));
  }

  /**
   * Runs a plugin debug command (fault injection) on a worker thread, one at
   * a time.
   * @returns the plugin's result (>= 0), or a negative status: BUSY when
   *   another command runs, BAD_STATE once closed.
   */
  async debug(command: string, arg: number): Promise<number> {
    if (this.closed) return NATIVE_STATUS.badState;
    if (this.debugging) return NATIVE_STATUS.busy;
    const run = this.native.engineDebug(this.engine, command, arg);
    this.debugging = run;
    try {
      return await run;
    } finally {
      this.debugging = undefined;
    }
  }

  /** The name of a native status ("EVB_STATUS_BUSY"). */
  statusName(rc: number): string {
    return this.native.statusName(rc);
  }

  /** Makes the next `n` accepted events panic inside the Rust callback; -1 once closed. */
  injectPanic(n: number): number {
    return this.closed ? -1 : this.native.faultPanic(this.bridge, n);
  }

  /**
   * Shuts down in the order the native side requires: waits for a debug
   * command in flight, stops the engine (no callback after), detaches the
   * bridge (its registration and token), lets `drainRest` empty the ring,
   * frees the bridge, releases the doorbell, frees the engine. Idempotent.
   * Returns the final counters.
   */
  async close(drainRest: () => void): Promise<NativeStats> {
    if (this.finalStats) return this.finalStats;
    this.closed = true;
    await this.debugging?.catch(() => undefined);
    const n = this.native;
    n.engineStop(this.engine);
    if (this.attached) n.engineDetach(this.engine);
    drainRest();
    this.native.stats(this.bridge);
    this.finalStats = decodeStats(this.statsBuf);
    n.bridgeFree(this.bridge);
    this.releaseDoorbell();
    n.engineFree(this.engine);
    return this.finalStats;
  }
}

