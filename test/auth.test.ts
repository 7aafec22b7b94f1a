// JWT access (issue 13) against the real daemon: every key family and file
// format, the refusals (wrong key, swapped algorithm, alg none, expired, not
// yet valid, wrong audience, no exp), rights on kinds, sources and subject
// patterns (live and replay), expiry at exp, refresh without a gap (by hand
// and by the client library), key rotation on SIGHUP, and no token in any
// log line. Tokens are minted here with jose.
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CryptoKey, type JWK, SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import t from 'tap';
import { WebSocket } from 'ws';
import { EvbridgeClient, type Notice, type StreamItem } from '../clients/client.js';
import { type RunningDaemon, TestClient, engine, metric, runCli, startDaemon, within } from './helpers/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'evb-auth-'));
const AUD = 'evbridge-test';
const ISS = 'https://issuer.test';
/** Every token minted here, to look for in the logs. */
const minted: string[] = [];
/** Every daemon started here, for the log check at the end. */
const daemons: RunningDaemon[] = [];

type Family = 'HS256' | 'RS256' | 'ES256' | 'EdDSA';
interface Claims {
  sub?: string;
  /** seconds from now; null: no exp */
  exp?: number | null;
  nbf?: number;
  aud?: string;
  iss?: string;
  rights?: object | null;
}

async function mint(alg: string, key: CryptoKey | Uint8Array, c: Claims = {}, kid?: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const body: Record<string, unknown> = {};
  if (c.rights !== null) body.evbridge = c.rights ?? {};
  let j = new SignJWT(body)
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
    .setSubject(c.sub ?? 'alice')
    .setAudience(c.aud ?? AUD)
    .setIssuer(c.iss ?? ISS)
    .setIssuedAt();
  if (c.exp !== null) j = j.setExpirationTime(now + (c.exp ?? 300));
  if (c.nbf !== undefined) j = j.setNotBefore(now + c.nbf);
  const token = await j.sign(key);
  minted.push(token);
  return token;
}

/** An unsecured JWT (RFC 7519 section 6): alg none, no signature. */
function unsecured(claims: object): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', aud: AUD, iss: ISS, exp: Math.floor(Date.now() / 1000) + 300, evbridge: {}, ...claims })}.`;
  minted.push(token);
  return token;
}

/** Opens a WebSocket with a token; resolves with the HTTP status of a refusal, or the open client. */
function connect(d: RunningDaemon, token: string | null, query = false): Promise<number | TestClient> {
  const url = query && token ? `${d.wsUrl}?access_token=${encodeURIComponent(token)}` : d.wsUrl;
  const headers = !query && token ? { Authorization: `Bearer ${token}` } : {};
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['evbridge.v1.json'], { headers });
    const c = new TestClient(ws);
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    c.opened.then(() => resolve(c), reject);
  });
}

const keys = {
  hs: new Uint8Array(randomBytes(48)),
  hsOther: new Uint8Array(randomBytes(48)),
} as Record<string, Uint8Array | CryptoKey> & { hs: Uint8Array; hsOther: Uint8Array };
const pairs: Partial<Record<Family, { publicKey: CryptoKey; privateKey: CryptoKey; other: CryptoKey }>> = {};

t.before(async () => {
  writeFileSync(join(dir, 'hs.key'), Buffer.from(keys.hs));
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    const a = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    const b = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
    pairs[alg] = { publicKey: a.publicKey, privateKey: a.privateKey, other: b.privateKey };
    writeFileSync(join(dir, `${alg}.pem`), await exportSPKI(a.publicKey));
  }
  const jwk = async (alg: Family, kid: string): Promise<JWK> => ({ ...(await exportJWK((pairs[alg] as { publicKey: CryptoKey }).publicKey)), kid, use: 'sig' });
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [await jwk('RS256', 'r1'), await jwk('ES256', 'e1'), await jwk('EdDSA', 'd1')] }));
});

async function jwtDaemon(keyFile: string, extra: string[] = []): Promise<RunningDaemon> {
  const d = await startDaemon(['--ws-auth', 'jwt', '--ws-jwt-key-file', keyFile, '--ws-jwt-audience', AUD, '--ws-jwt-issuer', ISS, ...extra]);
  daemons.push(d);
  return d;
}

const FAMILIES: { name: string; file: string; alg: Family; kid?: string }[] = [
  { name: 'HS256 secret file', file: 'hs.key', alg: 'HS256' },
  { name: 'RSA PEM', file: 'RS256.pem', alg: 'RS256' },
  { name: 'EC P-256 PEM', file: 'ES256.pem', alg: 'ES256' },
  { name: 'Ed25519 PEM', file: 'EdDSA.pem', alg: 'EdDSA' },
  { name: 'JWKS, RSA key', file: 'jwks.json', alg: 'RS256', kid: 'r1' },
  { name: 'JWKS, EC key', file: 'jwks.json', alg: 'ES256', kid: 'e1' },
  { name: 'JWKS, Ed25519 key', file: 'jwks.json', alg: 'EdDSA', kid: 'd1' },
];

for (const f of FAMILIES) {
  t.test(`${f.name}: the right token opens, every wrong one is refused with its reason`, async (t) => {
    const d = await jwtDaemon(join(dir, f.file));
    t.teardown(() => d.stop());
    const good = f.alg === 'HS256' ? keys.hs : (pairs[f.alg] as { privateKey: CryptoKey }).privateKey;
    const wrong = f.alg === 'HS256' ? keys.hsOther : (pairs[f.alg] as { other: CryptoKey }).other;
    const ok = await connect(d, await mint(f.alg, good, {}, f.kid));
    t.type(ok, TestClient, 'accepted');
    if (ok instanceof TestClient) {
      await ok.until(() => ok.msgs.some((m) => m.type === 'hello'), 5000, 'hello');
      t.match(ok.msgs[0], { type: 'hello', auth: { mode: 'jwt', sub: 'alice', rights: { kinds: null, sources: null, subjects: null } } }, 'the hello states the token');
      ok.ws.close();
    }
    const viaQuery = await connect(d, await mint(f.alg, good, {}, f.kid), true);
    t.type(viaQuery, TestClient, 'accepted as access_token in the query');
    if (viaQuery instanceof TestClient) viaQuery.ws.close();

    // A public-key family's swapped-algorithm attack: HS256 signed with the
    // public key's PEM text as the secret; for HS256, an RS256 token.
    const swapped =
      f.alg === 'HS256'
        ? await mint('RS256', (pairs.RS256 as { privateKey: CryptoKey }).privateKey)
        : await mint('HS256', new TextEncoder().encode(await exportSPKI((pairs[f.alg] as { publicKey: CryptoKey }).publicKey)), {}, f.kid);
    const cases: [string, string | null, string][] = [
      ['no token', null, 'missing'],
      ['signed with another key', await mint(f.alg, wrong, {}, f.kid), 'bad_signature'],
      ['swapped algorithm', swapped, 'wrong_algorithm'],
      ['alg none', unsecured({}), 'wrong_algorithm'],
      ['expired a minute ago', await mint(f.alg, good, { exp: -60 }, f.kid), 'expired'],
      ['not valid for another minute', await mint(f.alg, good, { nbf: 60 }, f.kid), 'not_yet_valid'],
      ['for another audience', await mint(f.alg, good, { aud: 'someone-else' }, f.kid), 'wrong_audience'],
      ['from another issuer', await mint(f.alg, good, { iss: 'https://elsewhere' }, f.kid), 'wrong_issuer'],
      ['without exp', await mint(f.alg, good, { exp: null }, f.kid), 'missing_exp'],
      ['without the rights claim', await mint(f.alg, good, { rights: null }, f.kid), 'bad_claims'],
      ['with a malformed rights claim', await mint(f.alg, good, { rights: { kinds: 'tick' } }, f.kid), 'bad_claims'],
      ['not a JWT', 'not-a-jwt-at-all', 'malformed'],
    ];
    for (const [what, token, reason] of cases) {
      const before = await metric(d.base, 'evbridge_auth_refusals_total', `reason="${reason}"`);
      const r = await connect(d, token);
      t.equal(r, 401, `${what}: 401`);
      if (r instanceof TestClient) r.ws.close();
      t.equal(await metric(d.base, 'evbridge_auth_refusals_total', `reason="${reason}"`), before + 1, `${what}: counted as ${reason}`);
    }
    const line = await d.waitLog((l) => l.msg === 'WebSocket upgrade refused' && l.auth === 'expired');
    t.equal(line.user, 'alice', 'a refusal names the token\'s sub');
    t.equal(await metric(d.base, 'evbridge_ws_connections_accepted_total', 'auth="jwt"'), 2, 'accepted connections by mode');
  });
}

t.test('bad key files and missing keys stop the start with one message (exit 2)', async (t) => {
  writeFileSync(join(dir, 'short.key'), 'too-short-secret\n');
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const { exportPKCS8 } = await import('jose');
  writeFileSync(join(dir, 'private.pem'), await exportPKCS8(privateKey));
  writeFileSync(join(dir, 'oct.jwks'), JSON.stringify({ keys: [{ kty: 'oct', k: Buffer.from(keys.hs).toString('base64url') }] }));
  const p384 = await generateKeyPair('ES384', { extractable: true });
  writeFileSync(join(dir, 'p384.pem'), await exportSPKI(p384.publicKey));
  const cases: [string[], RegExp][] = [
    [['--ws-auth', 'jwt'], /ws\.auth is "jwt" but ws\.jwt\.keyFile is empty/],
    [['--ws-auth', 'token'], /ws\.auth is "token" but ws\.token is empty/],
    [['--ws-auth', 'jwt', '--ws-jwt-key-file', join(dir, 'missing.key')], /cannot read .*missing\.key/],
    [['--ws-auth', 'jwt', '--ws-jwt-key-file', join(dir, 'short.key')], /HS256 secret of 16 bytes; at least 32/],
    [['--ws-auth', 'jwt', '--ws-jwt-key-file', join(dir, 'private.pem')], /holds a private key/],
    [['--ws-auth', 'jwt', '--ws-jwt-key-file', join(dir, 'oct.jwks')], /symmetric \(oct\) key/],
    [['--ws-auth', 'jwt', '--ws-jwt-key-file', join(dir, 'p384.pem')], /only P-256/],
    [['--ws-auth', 'basic'], /ws\.auth/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(['--http-port', '0', ...engine({ 'udp.port': 0, 'tick.hz': 0 }), ...args]);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, re, 'and says why');
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

/** The source ids of the reference engine's sources, by kind. */
async function sourceIds(d: RunningDaemon): Promise<Record<string, number>> {
  const st = (await (await fetch(`${d.base}/api/status`)).json()) as { engine: { sources: { id: number; kind: string }[] } };
  return Object.fromEntries(st.engine.sources.map((s) => [s.kind, s.id]));
}

t.test('rights: only what the token allows is ever sent, live or replayed', async (t) => {
  const d = await jwtDaemon(join(dir, 'hs.key'), engine({ 'tick.hz': 100, 'tick.subject': 'clock.frame', 'generator.threads': 1, 'generator.rate': 200, 'generator.subjects': ['md.XNAS.AAPL', 'md.XNYS.IBM'] }));
  t.teardown(() => d.stop());
  const ids = await sourceIds(d);
  const open = async (rights: object) => {
    const c = await connect(d, await mint('HS256', keys.hs, { rights }));
    if (!(c instanceof TestClient)) throw new Error(`refused: ${c}`);
    t.teardown(() => c.ws.close());
    return c;
  };
  const refusedSub = async (c: TestClient, id: string, filter: object) => {
    c.send({ type: 'subscribe', id, ...filter });
    await c.until(() => c.msgs.some((m) => m.type === 'error' && m.id === id), 5000, `error for ${id}`);
    return c.msgs.find((m) => m.type === 'error' && m.id === id) as unknown as { code: string; message: string };
  };
  // Let some history of every kind build up for the replay cases.
  const watcher = await open({});
  await watcher.subscribe('all');
  await watcher.until(() => new Set(watcher.got('all').map((e) => e.kind)).size >= 2 && watcher.got('all').length >= 100, 10000, 'tick and gen events');

  // Kinds.
  const k = await open({ kinds: ['tick'] });
  t.match(await refusedSub(k, 'everything', {}), { code: 'forbidden', message: /every kind \(the token allows kinds tick\)/ }, 'kinds: subscribing to everything is refused');
  t.match(await refusedSub(k, 'more', { kinds: ['tick', 'gen'] }), { code: 'forbidden', message: /kinds gen/ }, 'kinds: another kind is refused');
  t.match(await refusedSub(k, 'history', { kinds: ['gen'], from_seq: 1 }), { code: 'forbidden' }, 'kinds: resuming into another kind\'s history is refused');
  await k.subscribe('ticks', { kinds: ['tick'], from_seq: 1 });
  await k.until(() => k.got('ticks').length >= 60, 10000, '60 tick events (replay and live)');
  t.ok(k.got('ticks').every((e) => e.kind === 'tick'), `kinds: ${k.got('ticks').length} events, replayed and live, all tick`);

  // Sources.
  const s = await open({ sources: [ids.gen as number] });
  t.match(await refusedSub(s, 'everything', {}), { code: 'forbidden', message: /every source/ }, 'sources: everything is refused');
  t.match(await refusedSub(s, 'tick-src', { sources: [ids.tick as number] }), { code: 'forbidden', message: new RegExp(`sources ${ids.tick}`) }, 'sources: another source is refused');
  await s.subscribe('gen', { sources: [ids.gen as number], from_seq: 1 });
  await s.until(() => s.got('gen').length >= 100, 10000, '100 generator events');
  t.ok(s.got('gen').every((e) => e.source === ids.gen), 'sources: only the allowed source, replay included');

  // Subject patterns.
  const p = await open({ subjects: ['md.XNAS.>'] });
  t.match(await refusedSub(p, 'all-md', { subjects: ['md.>'] }), { code: 'forbidden', message: /subjects md\.>/ }, 'subjects: a wider pattern is refused');
  t.match(await refusedSub(p, 'any-venue', { subjects: ['md.*.AAPL'] }), { code: 'forbidden' }, 'subjects: a wildcard over the allowed token is refused');
  t.match(await refusedSub(p, 'none', { kinds: ['gen'] }), { code: 'forbidden', message: /every subject/ }, 'subjects: no pattern is refused');
  await p.subscribe('aapl', { subjects: ['md.XNAS.AAPL'], from_seq: 1 });
  await p.until(() => p.got('aapl').length >= 50, 10000, '50 AAPL events');
  t.ok(p.got('aapl').every((e) => e.subject === 'md.XNAS.AAPL'), 'subjects: only matching subjects, replay included');

  t.ok((await metric(d.base, 'evbridge_auth_refusals_total', 'reason="forbidden_subscription"')) >= 8, 'refused subscriptions counted');
  const watched = watcher.got('all');
  t.ok(watched.some((e) => e.kind === 'gen') && watched.some((e) => e.kind === 'tick'), 'other kinds flowed meanwhile');
});

t.test('expiry closes at exp with 4011; a refresh keeps the connection with no gap', async (t) => {
  const d = await jwtDaemon(join(dir, 'hs.key'), engine({ 'tick.hz': 100 }));
  t.teardown(() => d.stop());
  // Expiry: a token with 2 s left, no refresh.
  const a = await connect(d, await mint('HS256', keys.hs, { exp: 2 }));
  if (!(a instanceof TestClient)) throw new Error('refused');
  await a.until(() => a.msgs.length > 0, 5000, 'hello');
  const exp = a.msgs[0] as unknown as { auth: { exp: number } };
  const code = await within(a.closed, 5000, 'the close at exp');
  const late = Date.now() - exp.auth.exp * 1000;
  t.equal(code, 4011, 'closed with 4011');
  t.ok(late >= 0 && late < 1000, `closed ${late} ms after exp`);
  await d.waitLog((l) => l.msg === 'access token expired: closing the connection (4011)' && l.user === 'alice');

  // Refresh by hand: 2 s left, refreshed after 1 s with 30 s more.
  const b = await connect(d, await mint('HS256', keys.hs, { exp: 2 }));
  if (!(b instanceof TestClient)) throw new Error('refused');
  t.teardown(() => b.ws.close());
  await b.subscribe('ticks', { kinds: ['tick'] });
  await b.until(() => b.got('ticks').length >= 50, 5000, '50 ticks');
  b.send({ type: 'refresh', token: await mint('HS256', keys.hs, { sub: 'mallory' }) });
  await b.until(() => b.msgs.some((m) => m.type === 'error' && m.code === 'refresh_refused'), 5000, 'a refresh for another sub refused');
  b.send({ type: 'refresh', token: await mint('HS256', keys.hs, { exp: 30 }) });
  await b.until(() => b.msgs.some((m) => m.type === 'refreshed'), 5000, 'refreshed');
  const firstExp = (b.msgs[0] as unknown as { auth: { exp: number } }).auth.exp;
  const n = b.got('ticks').length;
  await b.until(() => Date.now() > firstExp * 1000 + 1500 && b.got('ticks').length > n + 100, 10000, 'ticks past the first exp');
  t.equal(b.closeCode, undefined, 'still open past the first token\'s exp');
  const seqs = b.got('ticks').map((e) => e.seq);
  t.ok(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)), 'ticks in order');
  t.notOk(b.msgs.some((m) => m.type === 'gap'), 'no gap');
  // Narrower rights in a refresh end the subscriptions they no longer cover.
  b.send({ type: 'refresh', token: await mint('HS256', keys.hs, { exp: 30, rights: { kinds: ['gen'] } }) });
  await b.until(() => b.msgs.some((m) => m.type === 'unsubscribed' && m.id === 'ticks'), 5000, 'ticks ended');
  t.ok(b.msgs.some((m) => m.type === 'error' && m.code === 'forbidden' && m.id === 'ticks'), 'with a forbidden error naming it');
  t.equal(await metric(d.base, 'evbridge_ws_disconnects_total', 'reason="token_expired"'), 1, 'one expiry counted');
});

t.test('the client library refreshes on its own', async (t) => {
  const d = await jwtDaemon(join(dir, 'hs.key'), engine({ 'tick.hz': 100 }));
  t.teardown(() => d.stop());
  let calls = 0;
  const notices: Notice[] = [];
  const client = new EvbridgeClient({
    url: d.wsUrl,
    token: () => {
      calls++;
      return mint('HS256', keys.hs, { exp: 3 });
    },
    refreshBeforeMs: 1500,
    onNotice: (n) => notices.push(n),
  });
  const items: StreamItem[] = [];
  let failed: Error | undefined;
  const sub = client.subscribe({ kinds: ['tick'] }).subscribe({ next: (i) => items.push(i), error: (e: Error) => (failed = e) });
  t.teardown(() => sub.unsubscribe());
  const start = Date.now();
  // Tokens live 3 s at most (exp is whole seconds) and are refreshed 1.5 s
  // before they end: four refreshes outlive the first token's life.
  await within(
    new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (notices.filter((n) => n.type === 'token_refreshed').length >= 4 || failed) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    }),
    15000,
    'four refreshes',
  );
  t.equal(failed, undefined, 'no error');
  t.ok(Date.now() - start >= 3500, `ran ${Date.now() - start} ms, longer than any one token lived (3 s at most)`);
  t.equal(calls, 5, 'the token function: once to connect, once per refresh');
  t.equal(await metric(d.base, 'evbridge_ws_connections_accepted_total', 'auth="jwt"'), 1, 'one connection throughout');
  const ev = items.filter((i) => i.type === 'event').map((i) => (i as { event: { seq: number } }).event.seq);
  t.notOk(items.some((i) => i.type === 'gap'), 'no gap');
  t.ok(ev.length > 300, `${ev.length} ticks`);
  t.ok(ev.every((s, i) => i === 0 || s > (ev[i - 1] as number)), 'in order');
});

t.test('keys rotate on SIGHUP: tokens of a removed key stop working', async (t) => {
  const file = join(dir, 'rotate.jwks');
  const jwk = async (k: CryptoKey, kid: string) => ({ ...(await exportJWK(k)), kid });
  const es = pairs.ES256 as { publicKey: CryptoKey; privateKey: CryptoKey };
  const ed = pairs.EdDSA as { publicKey: CryptoKey; privateKey: CryptoKey };
  writeFileSync(file, JSON.stringify({ keys: [await jwk(es.publicKey, 'old')] }));
  const d = await jwtDaemon(file);
  t.teardown(() => d.stop());
  const oldTok = () => mint('ES256', es.privateKey, {}, 'old');
  const newTok = () => mint('EdDSA', ed.privateKey, {}, 'new');
  const kept = await connect(d, await oldTok());
  t.type(kept, TestClient, 'old key accepted');
  t.equal(await connect(d, await newTok()), 401, 'new key not yet known');

  writeFileSync(file, JSON.stringify({ keys: [await jwk(ed.publicKey, 'new')] }));
  d.proc.kill('SIGHUP');
  await d.waitLog((l) => l.msg === 'JWT keys reloaded');
  t.equal(await connect(d, await oldTok()), 401, 'old key refused after the reload');
  const fresh = await connect(d, await newTok());
  t.type(fresh, TestClient, 'new key accepted');
  if (fresh instanceof TestClient) fresh.ws.close();
  if (kept instanceof TestClient) {
    t.equal(kept.closeCode, undefined, 'a connection made with the old key runs until its token expires');
    kept.send({ type: 'refresh', token: await oldTok() });
    await kept.until(() => kept.msgs.some((m) => m.type === 'error' && m.code === 'refresh_refused'), 5000, 'refresh with the old key refused');
    kept.ws.close();
  }

  writeFileSync(file, '{"keys": "broken"}');
  d.proc.kill('SIGHUP');
  await d.waitLog((l) => l.msg === 'JWT key reload failed: the previous keys stay in use');
  const still = await connect(d, await newTok());
  t.type(still, TestClient, 'a bad file keeps the previous keys');
  if (still instanceof TestClient) still.ws.close();
  t.equal(await metric(d.base, 'evbridge_auth_key_reloads_total', 'result="ok"'), 1);
  t.equal(await metric(d.base, 'evbridge_auth_key_reloads_total', 'result="failed"'), 1);
});

t.test('a shared-token daemon with JWT-style refresh says there is nothing to refresh; UDP still flows', async (t) => {
  const d = await startDaemon(['--ws-token', 'shared-token-value-1234']);
  daemons.push(d);
  t.teardown(() => d.stop());
  minted.push('shared-token-value-1234');
  const c = await connect(d, 'shared-token-value-1234');
  if (!(c instanceof TestClient)) throw new Error('refused');
  t.teardown(() => c.ws.close());
  await c.until(() => c.msgs.length > 0, 5000, 'hello');
  t.match(c.msgs[0], { auth: { mode: 'token', sub: null, exp: null, rights: null } }, 'hello: shared token');
  c.send({ type: 'refresh', token: 'x' });
  await c.until(() => c.msgs.some((m) => m.type === 'error' && m.code === 'refresh_refused'), 5000, 'refresh refused');
  await c.subscribe('udp', { kinds: ['udp'] });
  const u = createSocket('udp4');
  t.teardown(() => u.close());
  u.send('hello', d.udpPort, '127.0.0.1');
  await c.until(() => c.got('udp').length === 1, 5000, 'the datagram');
  t.equal(await connect(d, 'wrong-token-value-12345'), 401, 'a wrong shared token is refused');
  t.equal(await metric(d.base, 'evbridge_auth_refusals_total', 'reason="wrong_token"'), 1, 'counted as wrong_token');
});

t.test('no token, nor a token\'s signature, appears in any daemon\'s output', async (t) => {
  const out = daemons.map((d) => d.stdout() + d.stderr()).join('\n');
  t.ok(daemons.length >= 11 && out.length > 10_000, `${daemons.length} daemons, ${out.length} bytes of logs`);
  t.ok(minted.length > 100, `${minted.length} tokens minted`);
  const leaked = minted.filter((tok) => {
    const sig = tok.slice(tok.lastIndexOf('.') + 1);
    return out.includes(tok) || (sig.length > 0 && out.includes(sig));
  });
  t.same(leaked.length, 0, 'none found');
});
