/**
 * The daemon's error catalogue, in the manner of fastify's `FST_ERR_*`: every
 * error the daemon raises at start (and exits on) or logs at run time has a
 * code here and one function that writes its message, so that messages are
 * written once and tests can match them exactly.
 *
 * Exit codes: 2 for a bad configuration (restarting will not help: the
 * systemd unit's RestartPreventExitStatus), 1 for anything else that stops
 * the start.
 */

/** An error the daemon raises; `code` is its catalogue entry. */
export class EvbError extends Error {
  constructor(
    readonly code: ErrorCodeName,
    message: string,
    /** The process exit code when this error stops the start. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = 'EvbError';
  }
}

const BUILD_HINT = 'Build it with `npm run build:native` (needs cc, make and cargo), or run `npm install` again.';
const REBUILD_HINT = 'Rebuild the native libraries and the daemon together with `npm install`.';

/** Every error, by code. Each function returns the error with its message. */
export const Errors = {
  /** A configuration key or value is wrong (config.ts writes the message). */
  EVB_ERR_CONFIG: (message: string) => new EvbError('EVB_ERR_CONFIG', message, 2),
  EVB_ERR_NATIVE_MISSING: (path: string) =>
    new EvbError('EVB_ERR_NATIVE_MISSING', `The native bridge library ${path} does not exist. ${BUILD_HINT}`),
  EVB_ERR_NATIVE_DIRECTORY: (path: string) =>
    new EvbError(
      'EVB_ERR_NATIVE_DIRECTORY',
      `The native bridge library ${path} is a directory. Set native.bridgeLibrary to the path of libevbridge.so, or leave it empty for the built one.`,
    ),
  EVB_ERR_NATIVE_NOT_LIBRARY: (path: string, detail: string) =>
    new EvbError('EVB_ERR_NATIVE_NOT_LIBRARY', `The native bridge library ${path} is not a loadable shared library: ${detail}`),
  EVB_ERR_NATIVE_NOT_BRIDGE: (path: string) =>
    new EvbError('EVB_ERR_NATIVE_NOT_BRIDGE', `${path} does not export evb_abi_version(): it is not libevbridge.so.`),
  EVB_ERR_NATIVE_ABI: (path: string, got: number, want: number) =>
    new EvbError('EVB_ERR_NATIVE_ABI', `Native ABI mismatch: ${path} has ABI version ${got}; this daemon was built for ${want}. ${REBUILD_HINT}`),
  EVB_ERR_NATIVE_LAYOUT: (path: string, key: string, got: string, want: string) =>
    new EvbError(
      'EVB_ERR_NATIVE_LAYOUT',
      `Native layout mismatch: ${path} reports ${key} = ${got}; this daemon was built for ${want}. ${REBUILD_HINT}`,
    ),
  /** The bridge refused to load or create the engine plugin; the message is
   * the bridge's own (it names the plugin file and the fault). */
  EVB_ERR_PLUGIN: (status: string, message: string) =>
    new EvbError('EVB_ERR_PLUGIN', `${message} [${status}]`, status === 'EVB_STATUS_PLUGIN_CREATE' ? 2 : 1),
  EVB_ERR_BRIDGE: (capacity: number, maxPayload: number, status: string) =>
    new EvbError(
      'EVB_ERR_BRIDGE',
      `The bridge refused ring.capacityBytes=${capacity}, ring.maxPayloadBytes=${maxPayload}: ${status}. The ring must hold at least two records of the largest payload and subject (48 + ring.maxPayloadBytes + 255 bytes, rounded up to 64).`,
      2,
    ),
  EVB_ERR_ENGINE_START: (detail: string) => new EvbError('EVB_ERR_ENGINE_START', `Cannot start the engine: ${detail}`),
  EVB_ERR_LISTEN: (host: string, port: number, code: string | undefined, detail: string) =>
    new EvbError(
      'EVB_ERR_LISTEN',
      code === 'EADDRINUSE'
        ? `Cannot listen for HTTP on ${host}:${port}: the address is already in use. Choose another port with --http-port (or http.port).`
        : code === 'EACCES'
          ? `Cannot listen for HTTP on ${host}:${port}: permission denied (ports below 1024 need privileges). Choose another port with --http-port.`
          : code === 'EADDRNOTAVAIL'
            ? `Cannot listen for HTTP on ${host}:${port}: the address is not one of this host's. Choose another with --http-host.`
            : `Cannot listen for HTTP on ${host}:${port}: ${detail}`,
    ),
  /** A session failed while serving one client; it was closed with 1011 (logged, not thrown). */
  EVB_ERR_SESSION: (remote: string, detail: string) =>
    new EvbError('EVB_ERR_SESSION', `The session of ${remote} failed and was closed with 1011: ${detail}`),
  /** A native call failed at run time (logged). */
  EVB_ERR_NATIVE_CALL: (call: string, detail: string) => new EvbError('EVB_ERR_NATIVE_CALL', `${call} failed: ${detail}`),
  /** NATS unreachable at start, or its streams unusable (exit 1: systemd may retry, the servers may come back). */
  EVB_ERR_NATS: (detail: string) => new EvbError('EVB_ERR_NATS', `NATS: ${detail}.`),
} as const;

/** A catalogue code. */
export type ErrorCodeName = keyof typeof Errors;
