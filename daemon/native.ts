/**
 * Native loader: opens libevbridge through ffi-rs, checks its ABI version
 * and its layout (the sizes and offsets this daemon was compiled against,
 * `protocol/layout.ts`), and exposes every native call as a typed function.
 * Engine plugins are loaded by the bridge itself (`engineLoad`), so the
 * daemon never opens an engine library directly.
 *
 * Threading: every function here runs on the Node main thread, except
 * `engineDebug`, which runs on a libuv worker (it may take long) while the
 * main thread waits for its promise; the bridge refuses (EVB_STATUS_BUSY)
 * any other engine call made meanwhile. The only native code that runs
 * elsewhere is the engine's threads calling the Rust callback, and the
 * doorbell, which ffi-rs turns into a Node-API threadsafe function (queued to
 * the main thread, never blocking the engine thread).
 *
 * Ownership: pointers returned here (engine, bridge, ring memory, result and
 * stats cells) are owned by the native side until the matching free call;
 * see `EngineHost.close` for the order.
 */
import { existsSync, statSync } from 'node:fs';
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
import { Errors } from './errors.js';
import { NATIVE_LAYOUT } from '../protocol/layout.js';

/** ABI version of libevbridge this daemon was written against. */
export const BRIDGE_ABI_VERSION = NATIVE_LAYOUT.abi_version;

import { repoRoot } from './paths.js';

export { repoRoot };

/** Where `npm run build:native` puts the bridge and the built-in engine plugin. */
export function defaultLibraryPaths(): { bridge: string; engine: string } {
  return {
    bridge: join(repoRoot, 'native', 'bridge', 'target', 'release', 'libevbridge.so'),
    engine: join(repoRoot, 'native', 'build', 'libevengine.so'),
  };
}

/**
 * The first place where two layout descriptions differ, as a dotted path
 * and both values; undefined when they are equal.
 */
export function layoutDifference(got: unknown, want: unknown, path = ''): { key: string; got: string; want: string } | undefined {
  if (typeof got !== 'object' || got === null || typeof want !== 'object' || want === null) {
    return JSON.stringify(got) === JSON.stringify(want) ? undefined : { key: path || '(root)', got: JSON.stringify(got) ?? 'nothing', want: JSON.stringify(want) };
  }
  const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
  for (const k of [...keys].sort()) {
    const d = layoutDifference((got as Record<string, unknown>)[k], (want as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    if (d) return d;
  }
  return undefined;
}

let opened = 0;

/**
 * Opens libevbridge and returns typed bindings.
 * @throws EvbError EVB_ERR_NATIVE_MISSING, _DIRECTORY, _NOT_LIBRARY,
 *   _NOT_BRIDGE, _ABI or _LAYOUT: one message each, naming the file.
 */
export function openNative(bridgePath = defaultLibraryPaths().bridge) {
  if (!existsSync(bridgePath)) throw Errors.EVB_ERR_NATIVE_MISSING(bridgePath);
  if (statSync(bridgePath).isDirectory()) throw Errors.EVB_ERR_NATIVE_DIRECTORY(bridgePath);
  // ffi-rs keys libraries by name; a fresh name per open keeps several
  // daemons in one process (the tests) apart.
  const B = `evbridge${opened++}`;
  try {
    open({ library: B, path: bridgePath });
  } catch (err) {
    throw Errors.EVB_ERR_NATIVE_NOT_LIBRARY(bridgePath, String((err as Error).message ?? err).trim());
  }
  const X = DataType.External;
  const call = <T>(funcName: string, retType: DataType, paramsType: DataType[], paramsValue: unknown[]): T =>
    load({ library: B, funcName, retType, paramsType, paramsValue }) as T;

  let abi: number;
  try {
    abi = call<number>('evb_abi_version', DataType.U32, [], []);
  } catch {
    throw Errors.EVB_ERR_NATIVE_NOT_BRIDGE(bridgePath);
  }
  if (abi !== BRIDGE_ABI_VERSION) throw Errors.EVB_ERR_NATIVE_ABI(bridgePath, abi, BRIDGE_ABI_VERSION);
  const layout: unknown = JSON.parse(call<string>('evb_layout_json', DataType.String, [], []));
  const diff = layoutDifference(layout, NATIVE_LAYOUT);
  if (diff) throw Errors.EVB_ERR_NATIVE_LAYOUT(bridgePath, diff.key, diff.got, diff.want);

  const doorbellType = funcConstructor({ paramsType: [], retType: DataType.Void });
  const lastError = () => call<string>('evb_last_error', DataType.String, [], []);
  const statusName = (s: number) => call<string>('evb_status_name', DataType.String, [DataType.I32], [s]);

  return {
    path: bridgePath,
    abiVersion: abi,
    isNull: (p: JsExternal) => isNullPointer(p),
    wrap: createExternalBuffer,
    lastStatus: () => call<number>('evb_last_status', DataType.I32, [], []),
    lastError,
    statusName,
    /** A status and the last error message, for logs. */
    describeFailure: (rc: number) => `${statusName(rc)}: ${lastError()}`,

    bridgeNew: (ringCapacity: number, maxPayload: number, lateThresholdNs: number, kindMask: number) =>
      call<JsExternal>('evb_bridge_new', X, [DataType.U64, DataType.U32, DataType.U64, DataType.U32], [
        ringCapacity,
        maxPayload,
        lateThresholdNs,
        kindMask,
      ]),
    bridgeFree: (b: JsExternal) => call<undefined>('evb_bridge_free', DataType.Void, [X], [b]),
    /** A userdata token for `b` and the callback's address, for hosts that
     * register the callback with a producer themselves (the benchmarks). */
    tokenNew: (b: JsExternal) => call<JsExternal>('evb_bridge_token_new', X, [X], [b]),
    tokenRevoke: (token: JsExternal) => call<number>('evb_token_revoke', DataType.I32, [X], [token]),
    callback: () => call<JsExternal>('evb_callback', X, [], []),
    /**
     * Installs `fn` as the bridge's doorbell (ffi-rs makes it a threadsafe
     * function: engine threads queue a call, never wait). Returns `release`,
     * which frees it and lets the process exit; call it only after
     * `bridgeFree`, because only the bridge ever calls the doorbell.
     */
    setDoorbell: (b: JsExternal, fn: () => void): (() => void) => {
      const holder = createPointer({ paramsType: [doorbellType], paramsValue: [fn] });
      const rc = call<number>('evb_bridge_set_doorbell', DataType.I32, [X, X], [b, unwrapPointer(holder)[0]]);
      if (rc !== 0) throw Errors.EVB_ERR_NATIVE_CALL('evb_bridge_set_doorbell', statusName(rc));
      return () => freePointer({ paramsType: [doorbellType], paramsValue: holder, pointerType: PointerType.RsPointer });
    },
    ringData: (b: JsExternal) => call<JsExternal>('evb_ring_data', X, [X], [b]),
    ringCapacity: (b: JsExternal) => call<number>('evb_ring_capacity', DataType.U64, [X], [b]),
    /** Record count, or a negative status (BUSY when another thread drains). */
    drain: (b: JsExternal, maxBytes: number, maxRecords: number, arm: boolean) =>
      call<number>('evb_drain', DataType.I64, [X, DataType.U64, DataType.U64, DataType.I32], [b, maxBytes, maxRecords, arm ? 1 : 0]),
    drainResult: (b: JsExternal) => call<JsExternal>('evb_drain_result', X, [X], [b]),
    /** Refreshes the stats cell; returns its address (null while another thread drains). */
    stats: (b: JsExternal) => call<JsExternal>('evb_bridge_stats', X, [X], [b]),
    /** A JSON writer (`evb_json_writer_new`) with areas of these sizes, bytes; a null pointer on failure. */
    jsonWriterNew: (inputCap: number, outputCap: number) => call<JsExternal>('evb_json_writer_new', X, [DataType.U64, DataType.U64], [inputCap, outputCap]),
    jsonWriterInput: (w: JsExternal) => call<JsExternal>('evb_json_writer_input', X, [X], [w]),
    jsonWriterOutput: (w: JsExternal) => call<JsExternal>('evb_json_writer_output', X, [X], [w]),
    /** Runs the request in the input area: bytes written to the output area, or a negative status. */
    jsonWriterRun: (w: JsExternal) => call<number>('evb_json_writer_run', DataType.I64, [X], [w]),
    panicMessageNext: () => call<string>('evb_panic_message_next', DataType.String, [], []),
    faultPanic: (b: JsExternal, n: number) => call<number>('evb_bridge_fault_panic', DataType.I32, [X, DataType.U32], [b, n]),

    /** Loads the plugin; a null pointer means failure (see lastStatus/lastError). */
    engineLoad: (path: string, configJson: string) =>
      call<JsExternal>('evb_engine_load', X, [DataType.String, DataType.String, DataType.U64], [
        path,
        configJson,
        Buffer.byteLength(configJson),
      ]),
    engineDescribe: (e: JsExternal) => call<string>('evb_engine_describe', DataType.String, [X], [e]),
    engineAttach: (e: JsExternal, b: JsExternal) => call<number>('evb_engine_attach', DataType.I32, [X, X], [e, b]),
    engineRetireRegistration: (e: JsExternal, b: JsExternal) => call<number>('evb_engine_retire_registration', DataType.I32, [X, X], [e, b]),
    engineStart: (e: JsExternal) => call<number>('evb_engine_start', DataType.I32, [X], [e]),
    engineStop: (e: JsExternal) => call<number>('evb_engine_stop', DataType.I32, [X], [e]),
    engineDetach: (e: JsExternal) => call<number>('evb_engine_detach', DataType.I32, [X], [e]),
    /** Refreshes the engine's counters; returns their address (null while busy). */
    engineCounters: (e: JsExternal) => call<JsExternal>('evb_engine_counters', X, [X], [e]),
    /** Runs a debug command on a worker thread; resolves with its result or a negative status. */
    engineDebug: (e: JsExternal, command: string, arg: number): Promise<number> =>
      load({
        library: B,
        funcName: 'evb_engine_debug',
        retType: DataType.I64,
        paramsType: [X, DataType.String, DataType.U64],
        paramsValue: [e, command, arg],
        runInNewThread: true,
      }) as Promise<number>,
    engineFree: (e: JsExternal) => call<undefined>('evb_engine_free', DataType.Void, [X], [e]),
  };
}

export type Native = ReturnType<typeof openNative>;
