// The live status page at `/` in real headless Chromium against the real
// daemon: traffic and faults are driven through the engine, and at
// quiescence every number the page binds to a metric ([data-metric]) equals
// /metrics. The page and its data honour the WebSocket's access checks.
// A screenshot is saved (EVB_SCREENSHOT, or the temporary directory).
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import t from 'tap';
import { TestClient, startDaemon, waitMetric, within } from './helpers/daemon.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'status-page-token-0123';

async function post(base: string, path: string) {
  const r = await fetch(`${base}${path}`, { method: 'POST' });
  if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
}

/** Every sample of /metrics as `name{labels}` -> value (labels as printed). */
async function scrape(base: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** A metric's value as the page means it: the sample itself when labels are
 * given, else the sum over all its label values. */
function valueOf(m: Map<string, number>, key: string): number | undefined {
  if (m.has(key)) return m.get(key);
  let sum: number | undefined;
  for (const [k, v] of m) if (k.startsWith(`${key}{`)) sum = (sum ?? 0) + v;
  return sum;
}

t.test('the page shows the data path, and its numbers agree with /metrics', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing (.ci/run installs Debian package chromium)`);
    return;
  }
  const d = await startDaemon(['--fault-injection', 'true']);
  t.teardown(() => d.stop());
  const sub = await TestClient.connect(d.wsUrl);
  t.teardown(() => sub.ws.close());
  await sub.subscribe('everything');

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  await page.goto(`${d.base}/`);
  const updates = () => page.evaluate(() => Number(document.body.dataset.updates ?? 0));
  await page.waitForFunction(() => Number(document.body.dataset.updates ?? 0) >= 1, undefined, { timeout: 10000 });

  // Traffic: UDP datagrams at about 200/s until the page shows a rate.
  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  let sent = 0;
  const timer = setInterval(() => {
    for (let i = 0; i < 10; i++, sent++) udp.send(Buffer.from(`datagram ${sent}`), d.udpPort, '127.0.0.1');
  }, 50);
  try {
    await page.waitForFunction(
      () => /[1-9]/.test(document.querySelector('[data-metric="evbridge_callbacks_total"] + .rate')?.textContent ?? ''),
      undefined,
      { timeout: 15000 },
    );
  } finally {
    clearInterval(timer);
  }
  t.pass(`the page showed a callback rate while ${sent} datagrams were being sent`);

  // Faults: invalid, stale, late callbacks and panics.
  await post(d.base, '/debug/fault/unknownKind?count=13');
  await post(d.base, '/debug/fault/oversize?count=5');
  await post(d.base, '/debug/fault/stale?count=4');
  await post(d.base, '/debug/fault/late?count=7');
  // Panics are armed, then raised by the next callbacks: 3 of these 5.
  await post(d.base, '/debug/panic?count=3');
  await post(d.base, '/debug/fault/late?count=5');

  // Quiescence: every datagram and late event (7 + 2) delivered and sent.
  await waitMetric(d.base, 'evbridge_callbacks_accepted_total', '', (v) => v === sent + 9, 10000);
  await waitMetric(d.base, 'evbridge_ws_events_sent_total', '', (v) => v === sent + 9, 10000);
  await sub.until(() => sub.got('everything').length === sent + 9, 10000, 'every event at the subscriber');
  const before = await updates();
  await page.waitForFunction((n) => Number(document.body.dataset.updates ?? 0) >= n + 2, before, { timeout: 10000 });
  const shown = await page.evaluate(() =>
    Array.from(document.querySelectorAll('[data-metric]')).map((e) => [e.getAttribute('data-metric') ?? '', (e.textContent ?? '').trim()] as const),
  );
  const metrics = await scrape(d.base);
  const names = new Set<string>();
  for (const [name, text] of shown) {
    names.add(name);
    t.equal(Number(text), valueOf(metrics, name), `${name}: the page shows ${text}`);
  }
  for (const want of [
    'evbridge_callbacks_total',
    'evbridge_callbacks_accepted_total',
    'evbridge_callbacks_invalid_total{reason="bad_kind"}',
    'evbridge_callbacks_invalid_total{reason="too_long"}',
    'evbridge_callbacks_stale_total',
    'evbridge_callbacks_panicked_total',
    'evbridge_callbacks_late_total',
    'evbridge_events_delivered_total',
    'evbridge_ws_events_sent_total',
    'evbridge_ws_connections',
    'evbridge_ring_used_bytes',
    'evbridge_engine_dispatched_total',
  ]) {
    t.ok(names.has(want), `the page shows ${want}`);
  }
  t.equal(valueOf(metrics, 'evbridge_callbacks_panicked_total'), 3, 'the panics counted');
  t.equal(valueOf(metrics, 'evbridge_callbacks_total'), sent + 13 + 5 + 4 + 7 + 5, 'and /metrics counted every call');

  const clients = await page.$$eval('#clients tbody tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td')).map((c) => c.textContent ?? '')));
  t.equal(clients.length, 1, 'one client listed');
  t.match(clients[0]?.[0], /127\.0\.0\.1/, 'with its remote address');
  t.equal(clients[0]?.[1], '–', 'no token subject (no JWT)');
  t.equal(clients[0]?.[2], 'json', 'its encoding');
  t.match(clients[0]?.[4], /^everything: everything/, 'its subscription');
  t.equal(clients[0]?.[7], String(sent + 9), 'events sent to it');
  const panics = await page.$$eval('#panics li', (li) => li.map((l) => l.textContent ?? ''));
  t.equal(panics.length, 3, 'the three panics listed');
  t.ok(panics.every((p) => /injected panic/.test(p)), 'with their messages');
  t.match(await page.textContent('#engine'), /evengine/, 'the engine named');
  t.equal(await page.locator('.uplot').count(), 2, 'two charts drawn');
  t.same(problems, [], 'no console errors, page errors or failed requests');

  const file = process.env.EVB_SCREENSHOT ?? join(tmpdir(), 'evbridge-status-page.png');
  await page.screenshot({ path: file, fullPage: true });
  t.comment(`screenshot: ${file}`);
});

t.test('the page and its data honour the Origin allow-list and the token', async (t) => {
  const d = await startDaemon(['--ws-allowed-origins', 'https://ops.example', '--ws-token', TOKEN]);
  t.teardown(() => d.stop());
  const get = async (path: string, headers: Record<string, string> = {}) => (await fetch(`${d.base}${path}`, { headers })).status;
  for (const path of ['/', '/api/status']) {
    t.equal(await get(path), 401, `${path} without a token`);
    t.equal(await get(path, { Authorization: 'Bearer wrong-token-value' }), 401, `${path} with a wrong token`);
    t.equal(await get(`${path}?access_token=${TOKEN}`, { Origin: 'https://evil.example' }), 403, `${path} from another origin`);
    t.equal(await get(`${path}?access_token=${TOKEN}`), 200, `${path} with the token in the query`);
    t.equal(await get(path, { Authorization: `Bearer ${TOKEN}`, Origin: 'https://ops.example' }), 200, `${path} with the token from an allowed origin`);
  }
  const st = (await (await fetch(`${d.base}/api/status`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()) as { engine: { name: string } };
  t.equal(st.engine.name, 'evengine', 'the data itself');
  // The static files carry no data and are open, so the page can load and
  // then ask for its data with the token from its own URL.
  t.equal(await get('/status/page.js'), 200, 'the page script is open');
  await within(d.waitLog((l) => l.msg === 'status page request refused' && l.reason === 'origin'), 5000, 'the refusal logged');
});

t.test('/api/status carries the metrics, the engine and the clients', async (t) => {
  const d = await startDaemon([]);
  t.teardown(() => d.stop());
  const st = (await (await fetch(`${d.base}/api/status`)).json()) as {
    clientCount: number;
    metrics: Record<string, number>;
    engine: { name: string; kinds: { name: string }[] };
    links: Record<string, string>;
  };
  t.equal(st.clientCount, 0, 'no clients');
  t.equal(st.metrics.evbridge_callbacks_total, 0, 'the metrics, by name');
  t.equal(st.metrics['evbridge_callbacks_dropped_total{reason="ring_full"}'], 0, 'labelled samples as in /metrics');
  t.notOk(Object.keys(st.metrics).some((k) => k.startsWith('evbridge_process_')), 'without Node\'s process metrics');
  t.same(st.engine.kinds.map((k) => k.name), ['udp', 'tick', 'gen'], 'the engine\'s kinds');
  t.same(st.links, { metrics: '/metrics', healthz: '/healthz', readyz: '/readyz', ws: '/v1/stream' });
});
