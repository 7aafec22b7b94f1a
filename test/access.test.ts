// Origin allow-list and bearer token, both checked before the upgrade.
import t from 'tap';
import { WebSocket } from 'ws';
import { TestClient, metric, startDaemon } from './helpers/daemon.js';

const TOKEN = 's3cr3t-token-value';

function refusedWith(url: string, opts: ConstructorParameters<typeof WebSocket>[2]): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['evbridge.v1.json'], opts);
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => reject(new Error('connection was accepted')));
    ws.once('error', () => {});
  });
}

t.test('token and Origin checks', async (t) => {
  const d = await startDaemon(['--ws-allowed-origins', 'https://dash.example', '--ws-token', TOKEN]);
  t.teardown(() => d.stop());
  t.equal(await refusedWith(d.wsUrl, {}), 401, 'no token');
  t.equal(await refusedWith(d.wsUrl, { headers: { Authorization: 'Bearer not-the-token-zz9' } }), 401, 'wrong token');
  t.equal(await refusedWith(d.wsUrl, { headers: { Authorization: `Basic ${TOKEN}` } }), 401, 'not a bearer token');
  t.equal(
    await refusedWith(d.wsUrl, { headers: { Authorization: `Bearer ${TOKEN}`, Origin: 'https://evil.example' } }),
    403,
    'origin not on the list',
  );
  t.equal(await refusedWith(d.wsUrl.replace('/v1/stream', '/elsewhere'), { headers: { Authorization: `Bearer ${TOKEN}` } }), 404, 'unknown path');
  const ok = await TestClient.connect(d.wsUrl, { headers: { Authorization: `Bearer ${TOKEN}`, Origin: 'https://dash.example' } });
  t.equal(ok.ws.readyState, WebSocket.OPEN, 'right token and origin');
  ok.ws.close();
  const viaQuery = await TestClient.connect(`${d.wsUrl}?access_token=${TOKEN}`, { headers: { Origin: 'https://dash.example' } });
  t.equal(viaQuery.ws.readyState, WebSocket.OPEN, 'token as access_token query parameter (browsers)');
  viaQuery.ws.close();
  const forbidden = await d.waitLog((l) => l.msg === 'WebSocket upgrade refused' && l.status === 403);
  t.match(forbidden, { origin: 'https://evil.example', reason: 'origin' }, 'the 403 line names the refused Origin');
  t.equal(d.logs.filter((l) => l.msg === 'WebSocket upgrade refused').length, 5, 'each refusal logged');
  t.equal(await metric(d.base, 'evbridge_ws_upgrades_refused_total', 'reason="token"'), 3, 'refusals counted by reason');
  t.equal(await metric(d.base, 'evbridge_ws_upgrades_refused_total', 'reason="origin"'), 1);
  t.notMatch(d.stdout(), TOKEN, 'the token appears in no log line');
  t.notMatch(d.stdout(), 'not-the-token-zz9', 'nor does a wrong token');
});

t.test('connection limit', async (t) => {
  const d = await startDaemon(['--ws-max-connections', '1']);
  t.teardown(() => d.stop());
  const first = await TestClient.connect(d.wsUrl);
  t.equal(await refusedWith(d.wsUrl, {}), 503);
  first.ws.close();
});
