/**
 * The daemon's clocks. Engines stamp events with CLOCK_MONOTONIC
 * nanoseconds, which is what `process.hrtime` reads on Linux; wall-clock
 * times are derived from them with one offset, measured once when the
 * daemon starts, so that an event's `time` is the same in every frame that
 * carries it (live, replayed, JSON or binary).
 */

/** CLOCK_MONOTONIC now, nanoseconds, as a double (exact below 2^53 ns, 104 days). */
export function monoNowNs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e9 + ns;
}

/** Wall clock minus CLOCK_MONOTONIC, nanoseconds, measured at start. */
export const WALL_MINUS_MONO_NS: bigint =
  BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();

/** The offset split into whole milliseconds and the nanoseconds left, each
 * exact as a double, so that `wallMs` computes exactly. */
const OFFSET_MS = Number(WALL_MINUS_MONO_NS / 1_000_000n);
const OFFSET_REM_NS = Number(WALL_MINUS_MONO_NS % 1_000_000n);

/**
 * Unix milliseconds of an engine timestamp `tsNs` (CLOCK_MONOTONIC ns, exact
 * below 2^53): `round((ts + offset) / 1e6)`, halves up, computed exactly;
 * PROTOCOL.md's rule for `time`, which binary decoders apply to the frame's
 * offset.
 */
export function wallMs(tsNs: number): number {
  return OFFSET_MS + Math.floor((tsNs + OFFSET_REM_NS + 500_000) / 1e6);
}
