/**
 * Who may subscribe, and to what: the WebSocket's authentication modes.
 *
 * - `none`: anyone (subject to the Origin allow-list).
 * - `token`: one shared bearer token (`ws.token`), compared in constant time.
 * - `jwt`: JWT access tokens (RFC 7519) verified with `jose`. The key file
 *   (`ws.jwt.keyFile`) decides the key family, and the family pins the one
 *   algorithm accepted, so a public-key setup never accepts an HMAC token:
 *   a file of raw bytes is an HS256 secret (at least 32 bytes, RFC 7518
 *   section 3.2); a PEM public key is RS256 (RSA, at least 2048 bits),
 *   ES256 (P-256) or EdDSA (Ed25519); a JWKS (`{"keys": [...]}`) holds public
 *   keys of those kinds, chosen by `kid`. `alg: none` never passes, `exp` is
 *   required, `aud` and `iss` are checked when configured, with
 *   `ws.jwt.clockToleranceSeconds` of leeway on `exp` and `nbf`.
 *
 * A token's rights are its `ws.jwt.claim` claim (default `evbridge`):
 * `{"kinds": [...], "sources": [...], "subjects": [...]}`; a dimension left
 * out is unrestricted, so `{}` may read everything. A token without the
 * claim is refused. A subscription may ask only for what the rights cover
 * (`exceeds`); since replay uses the subscription's own filter, nothing
 * outside the rights is ever sent, replay included.
 *
 * Tokens arrive in the `Authorization: Bearer` header or the `access_token`
 * query parameter (RFC 6750 section 2.3; browsers cannot set headers on a
 * WebSocket), at most TOKEN_MAX_BYTES; they are never logged, put in a metric
 * label or echoed in an error frame.
 *
 * Keys are read at start and again on `reload` (SIGHUP): a bad file keeps
 * the previous keys. Threading: main thread; verification is asynchronous
 * (jose) but CPU-bound and short (one signature check).
 */
import { type KeyObject, createPublicKey, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { type JSONWebKeySet, type JWTPayload, createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { z } from 'zod';
import type { Config } from './config.js';
import { Errors, type EvbError } from './errors.js';
import { TOKEN_MAX_BYTES } from '../protocol/messages.js';
import { KIND_NAME_MAX } from '../protocol/records.js';
import { compilePattern, patternCovers } from '../protocol/subjects.js';

/** Shortest HS256 secret, bytes: the hash's output size (RFC 7518 section 3.2). */
export const HS256_MIN_SECRET_BYTES = 32;
/** Smallest RSA modulus accepted, bits (NIST SP 800-131A). */
export const RSA_MIN_BITS = 2048;

export type AuthMode = 'none' | 'token' | 'jwt';

/** Why a token or a request under it was refused (the label of evbridge_auth_refusals_total). */
export const AUTH_REFUSALS = [
  'missing',
  'too_long',
  'malformed',
  'wrong_token',
  'wrong_algorithm',
  'unknown_key',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'missing_exp',
  'wrong_audience',
  'wrong_issuer',
  'bad_claims',
  'forbidden_subscription',
  'refresh_subject_changed',
] as const;
export type AuthRefusal = (typeof AUTH_REFUSALS)[number];

/** What a token allows; null in a dimension: unrestricted. */
export interface Rights {
  kinds: readonly string[] | null;
  sources: readonly number[] | null;
  subjects: readonly string[] | null;
}

/** Who is connected and what they may read. */
export interface Principal {
  mode: AuthMode;
  /** The token's `sub`, for logs; null without JWT or without `sub`. */
  sub: string | null;
  /** Expiry, Unix seconds; null when the credential does not expire. */
  exp: number | null;
  /** null: may read everything. */
  rights: Rights | null;
}

/** A refusal, with a message that is safe to send and log (never the token). */
export class AuthError extends Error {
  constructor(
    readonly reason: AuthRefusal,
    message: string,
    /** The refused token's `sub` when it could be read (unverified; for the log). */
    readonly sub: string | null = null,
  ) {
    super(message);
  }
}

const kindName = z.string().regex(new RegExp(`^[a-z0-9_]{1,${KIND_NAME_MAX}}$`));
const RightsSchema = z
  .object({
    kinds: z.array(kindName).max(256).optional(),
    sources: z.array(z.number().int().min(0).max(0xffffffff)).max(4096).optional(),
    subjects: z
      .array(z.string().refine((p) => typeof compilePattern(p) !== 'string', 'must be a valid subject pattern'))
      .max(256)
      .optional(),
  })
  .strict();

/** The keys and the one algorithm family they verify. */
interface KeySet {
  /** What was loaded, for the log: e.g. "RSA public key (RS256)". */
  readonly description: string;
  readonly algorithms: string[];
  readonly key: Uint8Array | KeyObject | ReturnType<typeof createLocalJWKSet>;
}

/** The algorithm a public key verifies, or why it cannot be used. */
function algorithmOf(k: KeyObject): string {
  const t = k.asymmetricKeyType;
  const d = k.asymmetricKeyDetails ?? {};
  if (t === 'rsa') {
    if ((d.modulusLength ?? 0) < RSA_MIN_BITS) throw new Error(`an RSA key of ${d.modulusLength} bits; at least ${RSA_MIN_BITS} are required`);
    return 'RS256';
  }
  if (t === 'ec') {
    if (d.namedCurve !== 'prime256v1') throw new Error(`an EC key on curve ${d.namedCurve}; only P-256 (ES256) is accepted`);
    return 'ES256';
  }
  if (t === 'ed25519') return 'EdDSA';
  throw new Error(`a ${t} key; RSA (RS256), EC P-256 (ES256) and Ed25519 (EdDSA) are accepted`);
}

/** The algorithm of one JWK of a JWKS. */
function jwkAlgorithm(k: Record<string, unknown>, i: number): string {
  const where = `key ${i}${typeof k.kid === 'string' ? ` (kid "${k.kid}")` : ''}`;
  if (k.kty === 'oct') throw new Error(`${where} is a symmetric (oct) key; a JWKS holds public keys only (put an HS256 secret in a file of its own)`);
  if ('d' in k) throw new Error(`${where} holds a private key; give only the public part`);
  let alg: string;
  try {
    alg = algorithmOf(createPublicKey({ key: k as never, format: 'jwk' }));
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  if (k.alg !== undefined && k.alg !== alg) throw new Error(`${where} says alg ${String(k.alg)}, but its type verifies ${alg}`);
  return alg;
}

/**
 * Reads a key file.
 * @throws Error with a sentence on what is wrong with it.
 */
export function loadKeys(file: string): KeySet {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  const text = raw.toString('utf8').trim();
  if (text.startsWith('{')) {
    let jwks: unknown;
    try {
      jwks = JSON.parse(text);
    } catch (err) {
      throw new Error(`${file} starts like JSON but does not parse: ${(err as Error).message}`);
    }
    const keys = (jwks as { keys?: unknown }).keys;
    if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${file} is JSON but not a JWKS: expected {"keys": [...]} with at least one key`);
    const algs = new Set(keys.map((k, i) => jwkAlgorithm(k as Record<string, unknown>, i)));
    return {
      description: `JWKS of ${keys.length} public key(s) (${[...algs].join(', ')})`,
      algorithms: [...algs],
      key: createLocalJWKSet(jwks as JSONWebKeySet),
    };
  }
  if (text.startsWith('-----BEGIN')) {
    if (/PRIVATE KEY/.test(text)) throw new Error(`${file} holds a private key; give the public key (openssl pkey -pubout)`);
    let k: KeyObject;
    try {
      k = createPublicKey(text);
    } catch (err) {
      throw new Error(`${file} is not a PEM public key: ${(err as Error).message}`);
    }
    let alg: string;
    try {
      alg = algorithmOf(k);
    } catch (err) {
      throw new Error(`${file} holds ${(err as Error).message}`);
    }
    return { description: `${k.asymmetricKeyType} public key (${alg})`, algorithms: [alg], key: k };
  }
  // Anything else is an HMAC secret: the file's bytes, without a final newline.
  let secret = raw;
  while (secret.length > 0 && (secret[secret.length - 1] === 0x0a || secret[secret.length - 1] === 0x0d)) secret = secret.subarray(0, secret.length - 1);
  if (secret.length < HS256_MIN_SECRET_BYTES) {
    throw new Error(`${file} is read as an HS256 secret of ${secret.length} bytes; at least ${HS256_MIN_SECRET_BYTES} are required (or give a PEM public key or a JWKS)`);
  }
  return { description: `HS256 secret of ${secret.length} bytes`, algorithms: ['HS256'], key: new Uint8Array(secret) };
}

/** The token of a request: the bearer token of `Authorization`, else the
 * `access_token` query parameter; null when there is none. */
export function tokenOf(req: IncomingMessage, url: URL): string | null {
  const h = req.headers.authorization;
  const bearer = h?.startsWith('Bearer ') ? h.slice(7) : undefined;
  return bearer ?? url.searchParams.get('access_token');
}

function sameToken(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

const unrestricted = (mode: AuthMode): Principal => ({ mode, sub: null, exp: null, rights: null });

/** Maps jose's errors to refusal reasons. */
function refusalOf(err: unknown): AuthError {
  const e = err as { code?: string; claim?: string; reason?: string; message?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return new AuthError('expired', 'token expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'exp') return new AuthError('missing_exp', 'token has no "exp" claim');
      if (e.claim === 'nbf') return new AuthError('not_yet_valid', 'token not yet valid (nbf)');
      if (e.claim === 'aud') return new AuthError('wrong_audience', 'token audience (aud) not accepted');
      if (e.claim === 'iss') return new AuthError('wrong_issuer', 'token issuer (iss) not accepted');
      return new AuthError('bad_claims', `token claim "${e.claim}" invalid`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return new AuthError('wrong_algorithm', 'token algorithm not accepted');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new AuthError('bad_signature', 'token signature invalid');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return new AuthError('unknown_key', 'no key for this token');
    default:
      return new AuthError('malformed', 'token is not a valid JWT');
  }
}

/** The configured authentication; `authenticate` turns a request's token into a Principal. */
export class Authenticator {
  readonly mode: AuthMode;
  private keys: KeySet | undefined;

  /**
   * @throws EvbError EVB_ERR_CONFIG when the mode needs what is not configured, or the key file is unusable.
   */
  constructor(private readonly cfg: Config['ws']) {
    this.mode = cfg.auth === 'auto' ? (cfg.token ? 'token' : 'none') : cfg.auth;
    if (this.mode === 'token' && !cfg.token) throw Errors.EVB_ERR_CONFIG('ws.auth is "token" but ws.token is empty.');
    if (this.mode === 'jwt') {
      if (!cfg.jwt.keyFile) throw Errors.EVB_ERR_CONFIG('ws.auth is "jwt" but ws.jwt.keyFile is empty.');
      try {
        this.keys = loadKeys(cfg.jwt.keyFile);
      } catch (err) {
        throw Errors.EVB_ERR_CONFIG(`Invalid ws.jwt.keyFile: ${(err as Error).message}.`);
      }
    }
  }

  /** What the keys are, for the start-up log (no secret). */
  get keyDescription(): string | null {
    return this.keys?.description ?? null;
  }

  /**
   * Re-reads the key file (SIGHUP). On failure the previous keys stay.
   * @returns the new keys' description.
   * @throws EvbError EVB_ERR_CONFIG naming the problem; null mode: nothing to reload.
   */
  reload(): string | null {
    if (this.mode !== 'jwt') return null;
    try {
      this.keys = loadKeys(this.cfg.jwt.keyFile);
    } catch (err) {
      throw Errors.EVB_ERR_CONFIG(`Invalid ws.jwt.keyFile: ${(err as Error).message}.`) as EvbError;
    }
    return this.keys.description;
  }

  /**
   * SIGHUP: re-reads the key file (JWT mode; otherwise logs that there is
   * nothing to reload), counts the result and logs it. Never throws: a bad
   * file keeps the previous keys.
   */
  reloadOnSignal(counter: { authKeyReload(result: 'ok' | 'failed'): void }, log: Logger): void {
    if (this.mode !== 'jwt') {
      log.info({ auth: this.mode }, 'SIGHUP: no key file to reload');
      return;
    }
    try {
      const keys = this.reload();
      counter.authKeyReload('ok');
      log.info({ keyFile: this.cfg.jwt.keyFile, jwtKeys: keys }, 'JWT keys reloaded');
    } catch (err) {
      counter.authKeyReload('failed');
      log.error({ err }, 'JWT key reload failed: the previous keys stay in use');
    }
  }

  /**
   * Checks a request's token.
   * @returns who connects and what they may read.
   * @throws AuthError (rejects) with the reason.
   */
  async authenticate(token: string | null): Promise<Principal> {
    if (this.mode === 'none') return unrestricted('none');
    if (token === null || token === '') throw new AuthError('missing', 'missing bearer token');
    if (Buffer.byteLength(token) > TOKEN_MAX_BYTES) throw new AuthError('too_long', `token longer than ${TOKEN_MAX_BYTES} bytes`);
    if (this.mode === 'token') {
      if (!sameToken(this.cfg.token, token)) throw new AuthError('wrong_token', 'missing or wrong bearer token');
      return unrestricted('token');
    }
    const keys = this.keys as KeySet;
    const j = this.cfg.jwt;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys.key as Uint8Array, {
        algorithms: keys.algorithms,
        requiredClaims: ['exp'],
        clockTolerance: j.clockToleranceSeconds,
        ...(j.audience ? { audience: j.audience } : {}),
        ...(j.issuer ? { issuer: j.issuer } : {}),
      }));
    } catch (err) {
      const e = refusalOf(err);
      throw new AuthError(e.reason, e.message, unverifiedSub(token));
    }
    const sub = typeof payload.sub === 'string' ? payload.sub.slice(0, 256) : null;
    const claim = payload[j.claim];
    if (claim === undefined) throw new AuthError('bad_claims', `token has no "${j.claim}" claim (use {} to allow everything)`, sub);
    const r = RightsSchema.safeParse(claim);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new AuthError('bad_claims', `token claim "${j.claim}" invalid at ${[j.claim, ...(i?.path ?? [])].join('.')}: ${i?.message ?? 'invalid'}`, sub);
    }
    return {
      mode: 'jwt',
      sub,
      exp: payload.exp as number,
      rights: { kinds: r.data.kinds ?? null, sources: r.data.sources ?? null, subjects: r.data.subjects ?? null },
    };
  }
}

/** The `sub` of a token that failed verification, for the log only. */
function unverifiedSub(token: string): string | null {
  try {
    const s = decodeJwt(token).sub;
    return typeof s === 'string' ? s.slice(0, 256) : null;
  } catch {
    return null;
  }
}

const list = (xs: readonly (string | number)[]) => (xs.length ? xs.join(', ') : 'nothing');

/**
 * What a subscription asks for beyond `rights`, as a phrase for the error
 * frame, or null when the rights cover it. A dimension the subscription
 * leaves open (every kind, say) exceeds a restricted right.
 */
export function exceeds(
  rights: Rights | null,
  m: { kinds?: readonly string[] | undefined; sources?: readonly number[] | undefined; subjects?: readonly string[] | undefined },
): string | null {
  if (!rights) return null;
  const out: string[] = [];
  /** One dimension: what is asked beyond what is allowed, described. */
  const check = <T extends string | number>(name: string, allowed: readonly T[] | null, asked: readonly T[] | undefined, covers: (a: T, x: T) => boolean) => {
    if (!allowed) return;
    if (!asked) {
      out.push(`every ${name.slice(0, -1)} (the token allows ${name} ${list(allowed)})`);
      return;
    }
    const bad = asked.filter((x) => !allowed.some((a) => covers(a, x)));
    if (bad.length) out.push(`${name} ${list(bad)} (the token allows ${list(allowed)})`);
  };
  check('kinds', rights.kinds, m.kinds, (a, x) => a === x);
  check('sources', rights.sources, m.sources, (a, x) => a === x);
  check('subjects', rights.subjects, m.subjects, patternCovers);
  return out.length ? out.join('; ') : null;
}
