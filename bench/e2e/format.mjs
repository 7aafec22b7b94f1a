// Shared by the benchmark scripts: progress lines on stderr and the number
// formats of their tables.

/** A progress logger: `[elapsed s] message` on stderr, from `started` (ms). */
export function progressLog(started) {
  return (s) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${s}\n`);
}

/** The median of a non-empty list (the upper one of an even count). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Events per second as `1.23 M`, `45.6 k` or `789`. */
export const rate = (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)} k` : `${v.toFixed(0)}`);

/** A duration given in µs, as `1.23 s`, `4.5 ms` or `678 µs`. */
export const us = (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)} s` : v >= 1e3 ? `${(v / 1e3).toFixed(1)} ms` : `${v.toFixed(0)} µs`);
