// Configuration: precedence, validation messages with the value's real
// origin, the engine's own block, the README table, and how the binary exits.
import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULTS, KEYS, configTable, loadConfig } from '../daemon/config.js';
import { defaultLibraryPaths } from '../daemon/native.js';
import { ROOT, runCli } from './helpers/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'evbridge-config-'));
const file = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
};

t.test('defaults are the documented embedded configuration', async (t) => {
  const c = loadConfig();
  t.same(c, DEFAULTS);
  t.match(c, { http: { host: '127.0.0.1', port: 8080 }, engine: { plugin: '', config: {} } });
});

t.test('file < environment < flags, and the engine block', async (t) => {
  const f = file('a.json', JSON.stringify({ http: { port: 1000 }, ws: { allowedOrigins: ['https://a'], maxSubscriptions: 5 }, engine: { config: { tick: { hz: 5 } } } }));
  const c = loadConfig({
    file: f,
    env: { EVBRIDGE_HTTP_PORT: '2000', EVBRIDGE_WS_ALLOWED_ORIGINS: 'https://b,https://c' },
    flags: { 'http-port': '3000' },
    engineSets: ['udp.port=5141', 'udp.subject=net.in', 'generator.subjects=["a.b","c"]'],
  });
  t.equal(c.http.port, 3000);
  t.equal(c.ws.maxSubscriptions, 5);
  t.same(c.ws.allowedOrigins, ['https://b', 'https://c']);
  t.same(c.engine.config, { tick: { hz: 5 }, udp: { port: 5141, subject: 'net.in' }, generator: { subjects: ['a.b', 'c'] } }, '--engine-set merges into the file\'s block; values are JSON when they parse');
  t.equal(c.ws.path, '/v1/stream', 'untouched keys keep their defaults');
  t.same(loadConfig({ env: { EVBRIDGE_ENGINE_CONFIG: '{"udp":{"enabled":false}}' } }).engine.config, { udp: { enabled: false } }, 'the whole block from the environment');
  t.ok(KEYS.some((k) => k.flag === 'ring-capacity-bytes' && k.env === 'EVBRIDGE_RING_CAPACITY_BYTES' && k.description.startsWith('ring size')));
});

t.test('bad keys and values name the key, the origin and what was expected', async (t) => {
  const msg = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return { code: (err as { code?: string }).code, message: (err as Error).message };
    }
    return undefined;
  };
  t.same(msg(() => loadConfig({ env: { EVBRIDGE_HTTP_PORT: 'eighty' } })), {
    code: 'EVB_ERR_CONFIG',
    message: 'Invalid config key "http.port" (from environment variable EVBRIDGE_HTTP_PORT): Invalid input: expected number, received string.',
  });
  t.equal(msg(() => loadConfig({ flags: { 'ring-capacity-bytes': '300000' } }))?.message, 'Invalid config key "ring.capacityBytes" (from flag --ring-capacity-bytes): must be a power of two.');
  t.equal(msg(() => loadConfig({ file: file('b.json', '{"http":{"prot":1}}') }))?.message, `Unknown config key "http.prot" in config file ${join(dir, 'b.json')}.`);
  t.match(msg(() => loadConfig({ file: file('c.json', '{"http":') }))?.message, /is not valid JSON/);
  t.match(msg(() => loadConfig({ file: join(dir, 'missing.json') }))?.message, /Cannot read config file/);
  t.equal(
    msg(() => loadConfig({ flags: { 'ws-queue-hard-limit-bytes': '2048', 'ws-queue-low-watermark-bytes': '4096' } }))?.message,
    'Invalid config key "ws.queueHardLimitBytes" (from flag --ws-queue-hard-limit-bytes): must be larger than ws.queueLowWatermarkBytes.',
  );
  // A file that sets only the watermark: the hard limit it now breaks is the default's, not the file's.
  t.equal(
    msg(() => loadConfig({ file: file('d.json', JSON.stringify({ ws: { queueLowWatermarkBytes: 16 << 20 } })) }))?.message,
    'Invalid config key "ws.queueHardLimitBytes" (from the defaults): must be larger than ws.queueLowWatermarkBytes.',
  );
  t.equal(msg(() => loadConfig({ engineSets: ['no-equals-sign'] }))?.message, 'Invalid flag --engine-set "no-equals-sign": expected KEY=VALUE with a dotted KEY, such as udp.port=5141.');
  t.equal(
    msg(() => loadConfig({ env: { EVBRIDGE_ENGINE_CONFIG: '[1,2]' } }))?.message,
    'Invalid config key "engine.config" (from environment variable EVBRIDGE_ENGINE_CONFIG): Invalid input: expected record, received array.',
  );
});

t.test('the README\'s configuration table is the schema\'s', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  t.ok(readme.includes(configTable()), 'README.md holds configTable() exactly (regenerate: node -e "import(\'./dist/daemon/config.js\').then(m => console.log(m.configTable()))")');
});

t.test('the binary: --help, --version, exit 2 on bad config, one message per fault', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  const flat = help.stdout.replace(/\s+/g, ' ');
  t.match(flat, /--config <file>/);
  t.match(flat, /--ws-token <value> shared bearer token: with ws\.auth "token" \(or "auto"\) required for the WebSocket; when set, also required for \/debug and the status page in every mode \(ws\.token; env EVBRIDGE_WS_TOKEN; default ""\)/);
  t.match(flat, /--engine-set <key=value>/);
  const version = await runCli(['--version']);
  t.equal(version.code, 0);
  t.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  const bad = await runCli(['--http-port', '99999']);
  t.equal(bad.code, 2);
  t.equal(bad.stderr, 'evbridge: Invalid config key "http.port" (from flag --http-port): Too big: expected number to be <=65535.\n');
  const unknownFlag = await runCli(['--no-such-flag']);
  t.equal(unknownFlag.code, 2);
  t.match(unknownFlag.stderr, /unknown option '--no-such-flag'/);
  const engineBad = await runCli(['--http-port', '0', '--engine-set', 'udp.port="x"']);
  t.equal(engineBad.code, 2, 'the engine refusing its configuration is a configuration fault');
  t.equal(
    engineBad.stderr,
    `evbridge: Engine plugin ${defaultLibraryPaths().engine} refused its configuration: udp.port must be a whole number from 0 to 65535 (invalid argument). [EVB_STATUS_PLUGIN_CREATE]\n`,
  );
});

t.test('busy ports stop the daemon with a message that names them and the setting to change', async (t) => {
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  const r = await runCli(['--http-port', '0', '--engine-set', `udp.port=${port}`]);
  s.close();
  t.equal(r.code, 2);
  t.equal(
    r.stderr,
    `evbridge: Engine plugin ${defaultLibraryPaths().engine} refused its configuration: UDP address 127.0.0.1:${port} is already in use; udp.port chooses another (address already in use). [EVB_STATUS_PLUGIN_CREATE]\n`,
  );
  const tcp = createServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  const httpPort = (tcp.address() as { port: number }).port;
  const h = await runCli(['--http-port', String(httpPort), '--engine-set', 'udp.port=0']);
  tcp.close();
  t.equal(h.code, 1);
  t.equal(h.stderr, `evbridge: Cannot listen for HTTP on 127.0.0.1:${httpPort}: the address is already in use. Choose another port with --http-port (or http.port).\n`);
});
