/**
 * Subjects and subject patterns, NATS style (the NATS documentation,
 * "Subject-Based Messaging"): a subject is tokens separated by single dots
 * (`sensors.room1.temp`); in a pattern, `*` stands for exactly one token and
 * `>`, as the last token, for one or more tokens.
 *
 * The subject rule is the bridge's (`valid_subject` in
 * native/bridge/src/bridge.rs): UTF-8, at most `SUBJECT_MAX` bytes, no empty
 * token, and none of space, control characters, `*`, `>`, `"`, `\`.
 * Patterns follow the same rule, except that a whole token may be `*`, and
 * the last may be `>`.
 *
 * Matching works on the record's bytes, without decoding the subject: a
 * pattern is compiled once into token byte strings, and the match walks the
 * subject's bytes token by token (no allocation per event).
 */
import { SUBJECT_MAX } from './records.js';

/** `*` in a compiled pattern. */
const ONE = 1;
/** `>` in a compiled pattern (always last). */
const REST = 2;

/** A pattern compiled for matching: literal tokens as bytes, or a wildcard. */
export interface SubjectPattern {
  /** The pattern as written. */
  readonly text: string;
  readonly tokens: readonly (Uint8Array | typeof ONE | typeof REST)[];
}

const FORBIDDEN = /[\u0000-\u0020\u007f*>"\\]/;
const utf8 = new TextEncoder();

function tokenOk(t: string): boolean {
  return t.length > 0 && !FORBIDDEN.test(t);
}

/** Whether `s` is a valid subject. */
export function validSubject(s: string): boolean {
  return utf8.encode(s).length <= SUBJECT_MAX && s.split('.').every(tokenOk);
}

/**
 * Compiles a pattern.
 * @returns the compiled pattern, or a sentence saying what is wrong with it.
 */
export function compilePattern(text: string): SubjectPattern | string {
  if (utf8.encode(text).length > SUBJECT_MAX) return `is longer than ${SUBJECT_MAX} bytes`;
  const parts = text.split('.');
  const tokens: SubjectPattern['tokens'][number][] = [];
  for (let i = 0; i < parts.length; i++) {
    const t = parts[i] as string;
    if (t === '*') tokens.push(ONE);
    else if (t === '>') {
      if (i !== parts.length - 1) return 'has ">" before its last token';
      tokens.push(REST);
    } else if (tokenOk(t)) tokens.push(utf8.encode(t));
    else return `has an invalid token "${t}" (tokens are non-empty, without spaces, control characters, ", \\, or * and > inside a token)`;
  }
  return { text, tokens };
}

/**
 * Whether the subject in `buf[start, start + len)` matches `p`. A subject of
 * length 0 (an event without one) matches no pattern.
 */
export function matchSubject(p: SubjectPattern, buf: Uint8Array, start: number, len: number): boolean {
  if (len === 0) return false;
  const end = start + len;
  let pos = start;
  const n = p.tokens.length;
  for (let t = 0; t < n; t++) {
    if (pos > end) return false; // the subject has fewer tokens than the pattern
    const tok = p.tokens[t] as SubjectPattern['tokens'][number];
    if (tok === REST) return true; // at least one token remains (pos <= end)
    let e = pos;
    while (e < end && buf[e] !== 0x2e) e++;
    if (tok !== ONE) {
      if (e - pos !== tok.length) return false;
      for (let k = 0; k < tok.length; k++) if (buf[pos + k] !== tok[k]) return false;
    }
    pos = e + 1;
  }
  return pos === end + 1; // every token of the subject was consumed
}

/**
 * Whether every subject `inner` matches is also matched by `outer` (pattern
 * containment, as NATS decides whether one subscription's subject is a
 * subset of another's): token by token, a literal covers only itself, `*`
 * covers a literal or `*`, and `>` covers one or more remaining tokens of
 * any kind. Both must be valid patterns (compilePattern).
 */
export function patternCovers(outer: string, inner: string): boolean {
  const o = outer.split('.');
  const i = inner.split('.');
  for (let k = 0; k < o.length; k++) {
    const ot = o[k] as string;
    if (ot === '>') return i.length > k; // at least one token left in inner
    if (k >= i.length) return false;
    const it = i[k] as string;
    if (it === '>') return false; // inner reaches further than one token
    if (ot === '*') continue;
    if (it !== ot) return false; // a literal covers only itself (not `*`)
  }
  return o.length === i.length;
}
