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

/** This process's wall clock minus CLOCK_MONOTONIC, nanoseconds, measured at start. */
export const LOCAL_WALL_MINUS_MONO_NS: bigint =
  BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();

/**
 * Wall clock minus CLOCK_MONOTONIC of the process whose engine stamped the
 * events, nanoseconds: this process's own, except on an edge, which takes
 * the ingest's from NATS (`useSourceClock`). A live binding: importers see
 * a change.
 */
export let WALL_MINUS_MONO_NS: bigint = LOCAL_WALL_MINUS_MONO_NS;

/** The offset split into whole milliseconds and the nanoseconds left, each
 * exact as a double, so that `wallMs` computes exactly. */
let OFFSET_MS = Number(WALL_MINUS_MONO_NS / 1_000_000n);
let OFFSET_REM_NS = Number(WALL_MINUS_MONO_NS % 1_000_000n);
/** Source CLOCK_MONOTONIC minus ours, ns (0 unless an edge). */
let SOURCE_MINUS_LOCAL_MONO_NS = 0;

/**
 * Edge role: events were stamped by another process (maybe another
 * machine) whose wall-minus-monotonic offset is `offset`. Times and ages
 * are then computed through the wall clocks, so they are right to within
 * the two machines' clock agreement (NTP). Main thread.
 */
export function useSourceClock(offset: bigint) {
  WALL_MINUS_MONO_NS = offset;
  OFFSET_MS = Number(offset / 1_000_000n);
  OFFSET_REM_NS = Number(offset % 1_000_000n);
  SOURCE_MINUS_LOCAL_MONO_NS = Number(LOCAL_WALL_MINUS_MONO_NS - offset);
}

/** Now on the events' source's CLOCK_MONOTONIC, ns: what event ages are measured against. */
export function sourceMonoNowNs(): number {
  return monoNowNs() + SOURCE_MINUS_LOCAL_MONO_NS;
}

/** `wallMs`'s two constants, [whole ms, ns left], for the bridge's JSON
 * writer (`evb_json_writer_run`), which repeats its arithmetic. */
export function wallOffsetParts(): [number, number] {
  return [OFFSET_MS, OFFSET_REM_NS];
}

/**
 * Unix milliseconds of an engine timestamp `tsNs` (CLOCK_MONOTONIC ns, exact
 * below 2^53): `round((ts + offset) / 1e6)`, halves up, computed exactly;
 * PROTOCOL.md's rule for `time`, which binary decoders apply to the frame's
 * offset.
 */
export function wallMs(tsNs: number): number {
  return OFFSET_MS + Math.floor((tsNs + OFFSET_REM_NS + 500_000) / 1e6);
}
