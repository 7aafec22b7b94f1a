/**
 * Native loader: opens libevengine and libevbridge through ffi-rs, checks
 * their ABI versions, and exposes every native call as a typed function.
 *
 * Threading: every function here is called on the Node main thread. The only
 * native code that runs elsewhere is the engine's threads calling the Rust
 * callback, and the doorbell, which ffi-rs turns into a Node-API threadsafe
 * function (queued to the main thread, never blocking the engine thread).
 *
 * Ownership: pointers returned here (engine, bridge, token, ring memory) are
 * owned by the native side until the matching free call; see `close` in
 * `engine.ts` for the order.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DataType,
  type JsExternal,
  createExternalBuffer,
  createPointer,
  freePointer,
  funcConstructor,
  isNullPointer,
  load,
  open,
  PointerType,
  unwrapPointer,
} from 'ffi-rs';

/** ABI versions this daemon was written against. */
export const ENGINE_ABI_VERSION = 1;
export const BRIDGE_ABI_VERSION = 1;

/** Engine event kinds (evengine.h `ee_kind_t`). */
export const Kind = { udp: 1, tick: 2, gen: 3 } as const;
export type KindName = keyof typeof Kind;

/** Fault-injection cases (evengine.h `ee_fault_t`). */
export const Fault = {
  nullEvent: 1,
  nullPayload: 2,
  oversize: 3,
  unknownKind: 4,
  stale: 5,
  late: 6,
} as const;
export type FaultName = keyof typeof Fault;

/** Thrown when a native library cannot be used; `code` names the cause. */
export class NativeLoadError extends Error {
  constructor(
    readonly code: 'EVB_ERR_NATIVE_MISSING' | 'EVB_ERR_NATIVE_ABI' | 'EVB_ERR_NATIVE_CALL',
    message: string,
  ) {
    super(message);
    this.name = 'NativeLoadError';
  }
}

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root, whether running from source (daemon/) or dist/daemon/. */
export const repoRoot = existsSync(join(here, '..', 'native')) ? resolve(here, '..') : resolve(here, '..', '..');

/** Where `npm run build:native` puts the two libraries. */
export function defaultLibraryPaths(): { engine: string; bridge: string } {
  return {
    engine: join(repoRoot, 'native', 'build', 'libevengine.so'),
    bridge: join(repoRoot, 'native', 'bridge', 'target', 'release', 'libevbridge.so'),
  };
}

const BUILD_HINT = 'Build it with `npm run build:native` (needs cc, make and cargo), or run `npm install` again.';

let opened = 0;

/**
 * Opens both libraries and returns typed bindings.
 * @throws NativeLoadError when a file is missing, cannot be opened, or has an
 *   ABI version other than the one this daemon expects.
 */
export function openNative(paths = defaultLibraryPaths()) {
  for (const [what, path] of Object.entries(paths)) {
    if (!existsSync(path)) {
      throw new NativeLoadError('EVB_ERR_NATIVE_MISSING', `The native ${what} library ${path} does not exist. ${BUILD_HINT}`);
    }
  }
  // ffi-rs keys libraries by name; a fresh pair of names per open keeps
  // several daemons in one process (the tests) apart.
  const id = opened++;
  const E = `evengine${id}`;
  const B = `evbridge${id}`;
  try {
    open({ library: E, path: paths.engine });
    open({ library: B, path: paths.bridge });
  } catch (err) {
    throw new NativeLoadError('EVB_ERR_NATIVE_MISSING', `Cannot open the native libraries (${String(err)}). ${BUILD_HINT}`);
  }
  const X = DataType.External;
  const call = <T>(library: string, funcName: string, retType: DataType, paramsType: DataType[], paramsValue: unknown[]): T =>
    load({ library, funcName, retType, paramsType, paramsValue }) as T;

  const engineAbi = call<number>(E, 'ee_abi_version', DataType.U32, [], []);
  const bridgeAbi = call<number>(B, 'evb_abi_version', DataType.U32, [], []);
  const bridgeWantsEngine = call<number>(B, 'evb_engine_abi_version', DataType.U32, [], []);
  if (engineAbi !== ENGINE_ABI_VERSION || bridgeAbi !== BRIDGE_ABI_VERSION || bridgeWantsEngine !== engineAbi) {
    throw new NativeLoadError(
      'EVB_ERR_NATIVE_ABI',
      `Native ABI mismatch: engine ${engineAbi} (daemon expects ${ENGINE_ABI_VERSION}, bridge expects ${bridgeWantsEngine}), ` +
        `bridge ${bridgeAbi} (daemon expects ${BRIDGE_ABI_VERSION}). Rebuild both with \`npm run build:native\`.`,
    );
  }

  const doorbellType = funcConstructor({ paramsType: [], retType: DataType.Void });

  const engine = {
    abiVersion: engineAbi,
    strerror: (rc: number) => call<string>(E, 'ee_strerror', DataType.String, [DataType.I32], [rc]),
    errName: (rc: number) => call<string>(E, 'ee_err_name', DataType.String, [DataType.I32], [rc]),
    nowNs: () => call<number>(E, 'ee_now_ns', DataType.U64, [], []),
    create: () => call<JsExternal>(E, 'ee_engine_new', X, [], []),
    free: (eng: JsExternal) => call<undefined>(E, 'ee_engine_free', DataType.Void, [X], [eng]),
    register: (eng: JsExternal, cb: JsExternal, userdata: JsExternal, mask: number) =>
      call<number>(E, 'ee_engine_register', DataType.I64, [X, X, X, DataType.U32], [eng, cb, userdata, mask]),
    unregister: (eng: JsExternal, id: number) => call<number>(E, 'ee_engine_unregister', DataType.I32, [X, DataType.I64], [eng, id]),
    addUdp: (eng: JsExternal, host: string, port: number) =>
      call<number>(E, 'ee_engine_add_udp', DataType.I32, [X, DataType.String, DataType.I32], [eng, host, port]),
    udpPort: (eng: JsExternal, source: number) => call<number>(E, 'ee_engine_udp_port', DataType.I32, [X, DataType.I32], [eng, source]),
    addTick: (eng: JsExternal, hz: number) => call<number>(E, 'ee_engine_add_tick', DataType.I32, [X, DataType.Double], [eng, hz]),
    addGenerator: (eng: JsExternal, threads: number, rate: number, payloadLen: number, count: number) =>
      call<number>(E, 'ee_engine_add_generator', DataType.I32, [X, DataType.U32, DataType.U64, DataType.U32, DataType.U64], [
        eng,
        threads,
        rate,
        payloadLen,
        count,
      ]),
    generatorsDone: (eng: JsExternal) => call<number>(E, 'ee_engine_generators_done', DataType.I32, [X], [eng]),
    start: (eng: JsExternal) => call<number>(E, 'ee_engine_start', DataType.I32, [X], [eng]),
    stop: (eng: JsExternal) => call<number>(E, 'ee_engine_stop', DataType.I32, [X], [eng]),
    setFaultInjection: (eng: JsExternal, on: boolean) =>
      call<number>(E, 'ee_engine_set_fault_injection', DataType.I32, [X, DataType.I32], [eng, on ? 1 : 0]),
    inject: (eng: JsExternal, fault: FaultName, count: number) =>
      call<number>(E, 'ee_engine_inject', DataType.I64, [X, DataType.I32, DataType.U32], [eng, Fault[fault], count]),
  };

  const bridge = {
    abiVersion: bridgeAbi,
    lastStatus: () => call<number>(B, 'evb_last_status', DataType.I32, [], []),
    statusName: (s: number) => call<string>(B, 'evb_status_name', DataType.String, [DataType.I32], [s]),
    create: (ringCapacity: number, maxPayload: number, lateThresholdNs: number, kindMask: number) =>
      call<JsExternal>(B, 'evb_bridge_new', X, [DataType.U32, DataType.U64, DataType.U32, DataType.U64, DataType.U32], [
        engineAbi,
        ringCapacity,
        maxPayload,
        lateThresholdNs,
        kindMask,
      ]),
    free: (b: JsExternal) => call<undefined>(B, 'evb_bridge_free', DataType.Void, [X], [b]),
    tokenNew: (b: JsExternal) => call<JsExternal>(B, 'evb_bridge_token_new', X, [X], [b]),
    tokenRevoke: (token: JsExternal) => call<number>(B, 'evb_token_revoke', DataType.I32, [X], [token]),
    callback: () => call<JsExternal>(B, 'evb_callback', X, [], []),
    /**
     * Installs `fn` as the bridge's doorbell (ffi-rs makes it a threadsafe
     * function: engine threads queue a call, never wait). Returns `release`,
     * which frees it and lets the process exit; call it only after
     * `free(bridge)`, because only the bridge ever calls the doorbell.
     */
    setDoorbell: (b: JsExternal, fn: () => void): (() => void) => {
      const holder = createPointer({ paramsType: [doorbellType], paramsValue: [fn] });
      const rc = call<number>(B, 'evb_bridge_set_doorbell', DataType.I32, [X, X], [b, unwrapPointer(holder)[0]]);
      if (rc !== 0) throw new NativeLoadError('EVB_ERR_NATIVE_CALL', `evb_bridge_set_doorbell failed: ${rc}`);
      return () => freePointer({ paramsType: [doorbellType], paramsValue: holder, pointerType: PointerType.RsPointer });
    },
    ringData: (b: JsExternal) => call<JsExternal>(B, 'evb_ring_data', X, [X], [b]),
    ringCapacity: (b: JsExternal) => call<number>(B, 'evb_ring_capacity', DataType.U64, [X], [b]),
    drain: (b: JsExternal, maxBytes: number, maxRecords: number, arm: boolean) =>
      call<number>(B, 'evb_drain', DataType.I64, [X, DataType.U64, DataType.U64, DataType.I32], [b, maxBytes, maxRecords, arm ? 1 : 0]),
    drainResult: (b: JsExternal) => call<JsExternal>(B, 'evb_drain_result', X, [X], [b]),
    stats: (b: JsExternal) => call<JsExternal>(B, 'evb_bridge_stats', X, [X], [b]),
    delayBoundNs: (i: number) => call<number>(B, 'evb_delay_bucket_bound_ns', DataType.U64, [DataType.U32], [i]),
    panicMessageNext: () => call<string>(B, 'evb_panic_message_next', DataType.String, [], []),
    faultPanic: (b: JsExternal, n: number) => call<number>(B, 'evb_bridge_fault_panic', DataType.I32, [X, DataType.U32], [b, n]),
  };

  return { engine, bridge, isNull: (p: JsExternal) => isNullPointer(p), wrap: createExternalBuffer };
}

export type Native = ReturnType<typeof openNative>;
