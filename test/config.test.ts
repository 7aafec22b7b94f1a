// Configuration: precedence, validation messages, and how the binary exits.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, DEFAULTS, KEYS, loadConfig } from '../daemon/config.js';
import { runCli } from './helpers/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'evbridge-config-'));
const file = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
};

t.test('defaults are the documented embedded configuration', async (t) => {
  const c = loadConfig();
  t.same(c, DEFAULTS);
  t.match(c, { http: { host: '127.0.0.1', port: 8080 }, udp: { host: '127.0.0.1', port: 5140 }, tick: { hz: 1 } });
});

t.test('file < environment < flags', async (t) => {
  const f = file('a.json', JSON.stringify({ http: { port: 1000 }, tick: { hz: 5 }, ws: { allowedOrigins: ['https://a'] } }));
  const c = loadConfig({ file: f, env: { EVBRIDGE_HTTP_PORT: '2000', EVBRIDGE_WS_ALLOWED_ORIGINS: 'https://b,https://c' }, flags: { 'http-port': '3000' } });
  t.equal(c.http.port, 3000);
  t.equal(c.tick.hz, 5);
  t.same(c.ws.allowedOrigins, ['https://b', 'https://c']);
  t.equal(c.udp.port, 5140, 'untouched keys keep their defaults');
  t.ok(KEYS.some((k) => k.flag === 'ring-capacity-bytes' && k.env === 'EVBRIDGE_RING_CAPACITY_BYTES'));
});

t.test('bad keys and values name the key, the origin and what was expected', async (t) => {
  t.throws(() => loadConfig({ env: { EVBRIDGE_HTTP_PORT: 'eighty' } }), {
    name: 'ConfigError',
    message: 'Invalid config key "http.port" (from environment variable EVBRIDGE_HTTP_PORT): Invalid input: expected number, received string.',
  });
  t.throws(() => loadConfig({ flags: { 'ring-capacity-bytes': '300000' } }), {
    message: 'Invalid config key "ring.capacityBytes" (from flag --ring-capacity-bytes): must be a power of two.',
  });
  t.throws(() => loadConfig({ file: file('b.json', '{"http":{"prot":1}}') }), {
    message: `Unknown config key "http.prot" in config file ${join(dir, 'b.json')}.`,
  });
  t.throws(() => loadConfig({ file: file('c.json', '{"http":') }), { message: /is not valid JSON/ });
  t.throws(() => loadConfig({ file: join(dir, 'missing.json') }), { message: /Cannot read config file/ });
  t.throws(() => loadConfig({ flags: { 'ws-queue-hard-limit-bytes': '2048', 'ws-queue-low-watermark-bytes': '4096' } }), {
    message: 'Invalid config key "ws.queueHardLimitBytes" (from flag --ws-queue-hard-limit-bytes): must be larger than ws.queueLowWatermarkBytes.',
  });
  t.equal(new ConfigError('x').code, 'EVB_ERR_CONFIG');
});

t.test('the binary: --help, --version, exit 2 on bad config, 1 on a missing library', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--config <file>/);
  t.match(help.stdout, /--ws-token <value>\s+ws\.token \(env EVBRIDGE_WS_TOKEN\)/);
  const version = await runCli(['--version']);
  t.equal(version.code, 0);
  t.equal(version.stdout.trim(), '0.1.0');
  const bad = await runCli(['--http-port', '99999']);
  t.equal(bad.code, 2);
  t.equal(bad.stderr, 'evbridge: Invalid config key "http.port" (from flag --http-port): Too big: expected number to be <=65535.\n');
  const unknownFlag = await runCli(['--no-such-flag']);
  t.equal(unknownFlag.code, 2);
  t.match(unknownFlag.stderr, /unknown option '--no-such-flag'/);
  const missing = await runCli(['--native-engine-library', '/nonexistent/libevengine.so']);
  t.equal(missing.code, 1);
  t.equal(
    missing.stderr,
    'evbridge: The native engine library /nonexistent/libevengine.so does not exist. Build it with `npm run build:native` (needs cc, make and cargo), or run `npm install` again.\n',
  );
});

t.test('a UDP port in use stops the daemon with a clear message', async (t) => {
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  const r = await runCli(['--http-port', '0', '--udp-port', String(port)]);
  s.close();
  t.equal(r.code, 1);
  t.equal(r.stderr, `evbridge: Cannot listen for UDP on 127.0.0.1:${port}: cannot resolve or bind the address (EADDR)\n`);
});
