/**
 * Subscription filters: which events a subscription wants, by kind, source
 * and subject pattern, and the key under which subscriptions with the same
 * filter share one encoding of each batch.
 *
 * Matching reads the record's fields in place (EventBatch): a kind is a bit
 * test, a source a set lookup, a subject a byte walk per pattern
 * (protocol/subjects.ts). An event matches when it passes every filter given.
 */
import type { EventBatch } from '../batch.js';
import type { KindTable } from '../engine.js';
import type { SubscribeMessage } from '../../protocol/messages.js';
import { type SubjectPattern, compilePattern, matchSubject } from '../../protocol/subjects.js';

export interface Filter {
  /** Bit k set for each wanted kind number; null for every kind. */
  readonly kindMask: number | null;
  readonly sources: ReadonlySet<number> | null;
  /** Any of these patterns; null for every subject (and events without one). */
  readonly subjects: readonly SubjectPattern[] | null;
  /** The same for every filter that matches the same events. */
  readonly key: string;
}

/**
 * The filter of a subscribe message.
 * @returns the filter, or the first kind name the engine does not have.
 */
export function filterOf(m: SubscribeMessage, kinds: KindTable): Filter | { unknownKind: string } {
  let kindMask: number | null = null;
  if (m.kinds) {
    kindMask = 0;
    for (const k of m.kinds) {
      const n = kinds.byName.get(k);
      if (n === undefined) return { unknownKind: k };
      kindMask = (kindMask | (1 << n)) >>> 0;
    }
  }
  const sources = m.sources ? new Set(m.sources) : null;
  // The schema validated every pattern, so compiling cannot fail here.
  const subjects = m.subjects ? [...new Set(m.subjects)].sort().map((p) => compilePattern(p) as SubjectPattern) : null;
  const key = [
    kindMask === null ? '*' : kindMask.toString(16),
    sources ? [...sources].sort((a, b) => a - b).join(',') : '*',
    subjects ? subjects.map((s) => s.text).join(' ') : '*',
  ].join('|');
  return { kindMask, sources, subjects, key };
}

/** Whether the filter passes every event (no per-event test needed). */
export function matchesAll(f: Filter): boolean {
  return f.kindMask === null && f.sources === null && f.subjects === null;
}

/** Whether event i of `b` matches `f`. */
export function matches(f: Filter, b: EventBatch, i: number): boolean {
  if (f.kindMask !== null && ((f.kindMask >>> b.kindNo(i)) & 1) === 0) return false;
  if (f.sources !== null && !f.sources.has(b.source(i))) return false;
  if (f.subjects !== null) {
    const start = b.subjectStart(i);
    const len = b.subjectLength(i);
    for (const p of f.subjects) if (matchSubject(p, b.bytes, start, len)) return true;
    return false;
  }
  return true;
}
