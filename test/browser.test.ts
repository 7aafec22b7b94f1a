// The client library in real headless Chromium (Debian's chromium, driven by
// playwright-core) against the real daemon, with both encodings.
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import t from 'tap';
import { ROOT, startDaemon } from './helpers/daemon.js';

const CHROMIUM = '/usr/bin/chromium';

t.test('a page using the client library receives events', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing (.ci/run installs Debian package chromium)`);
    return;
  }
  const d = await startDaemon(['--engine-set', 'tick.hz=100']);
  t.teardown(() => d.stop());
  const bundle = await build({
    entryPoints: [join(ROOT, 'clients', 'client.ts')],
    bundle: true,
    format: 'iife',
    globalName: 'Evbridge',
    platform: 'browser',
    external: ['ws'], // Node only; browsers use their own WebSocket
    write: false,
  });
  const js = bundle.outputFiles[0]?.text ?? '';
  const page = `<!doctype html><meta charset="utf-8"><title>evbridge</title><script>${js}</script>
<script>
  window.got = { json: [], binary: [], errors: [] };
  for (const encoding of ['json', 'binary']) {
    new Evbridge.EvbridgeClient({ url: ${JSON.stringify(d.wsUrl)}, encoding })
      .subscribe({ kinds: ['tick'] })
      .subscribe({
        next: (i) => { if (i.type === 'event') window.got[encoding].push({ seq: i.event.seq, kind: i.event.kind, len: i.event.payload.length, epoch: i.event.epoch }); },
        error: (e) => window.got.errors.push(String(e)),
      });
  }
</script>`;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']  // playwright gives it a fresh temporary profile,
  });
  t.teardown(() => browser.close());
  const p = await browser.newPage();
  await p.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
  await p.waitForFunction(() => {
    const g = (window as unknown as { got: { json: unknown[]; binary: unknown[]; errors: unknown[] } }).got;
    return g.errors.length > 0 || (g.json.length >= 30 && g.binary.length >= 30);
  }, undefined, { timeout: 15000 });
  const got = (await p.evaluate(() => (window as unknown as { got: unknown }).got)) as {
    json: { seq: number; kind: string; len: number; epoch: string }[];
    binary: { seq: number; kind: string; len: number; epoch: string }[];
    errors: string[];
  };
  t.same(got.errors, [], 'no errors in the page');
  for (const enc of ['json', 'binary'] as const) {
    const ev = got[enc];
    t.ok(ev.every((e) => e.kind === 'tick' && e.len === 16), `${enc}: tick events with their 16-byte payload`);
    t.ok(ev.every((e, i) => i === 0 || e.seq > (ev[i - 1] as { seq: number }).seq), `${enc}: increasing seq`);
    t.ok(ev.every((e) => typeof e.epoch === 'string' && e.epoch.length > 0), `${enc}: epoch known`);
  }
  t.equal(got.json[0]?.epoch, got.binary[0]?.epoch, 'both connections see the same epoch');
});
