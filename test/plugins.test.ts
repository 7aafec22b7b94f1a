// Engine plugins: every way a plugin can be wrong stops the start with one
// message and an exit code; the template, pcap and MQTT adapters against the
// real daemon and real processes (a named pipe, a capture file and live
// capture on lo, a mosquitto broker that is stopped and restarted).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ROOT, TestClient, engine, metric, runCli, startDaemon, track, waitMetric, within } from './helpers/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'evbridge-plugins-'));
const PLUGINS = join(ROOT, 'native', 'build', 'plugins');
const INCLUDE = join(ROOT, 'native', 'include');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A fake plugin, compiled from C with `defines`. */
function fakePlugin(name: string, defines: string[]): string {
  const src = join(dir, 'fake.c');
  writeFileSync(
    src,
    `#include <stdlib.h>
#include "evb_plugin.h"
#ifndef ABI
#define ABI EVB_PLUGIN_ABI_VERSION
#endif
#ifndef SIZE
#define SIZE sizeof(evb_plugin_t)
#endif
#ifndef KIND_NAME
#define KIND_NAME "ok"
#endif
static int create(const evb_host_t *h, const evb_config_t *c, const char *j, size_t n, void **out, char *err, size_t cap) {
  (void)h; (void)c; (void)j; (void)n;
#ifdef REFUSE
  snprintf(err, cap, "the answer must be 42");
  return -7;
#else
  (void)err; (void)cap;
  *out = malloc(1);
  return 0;
#endif
}
static const evb_plugin_kind_t kinds_list[] = {{.number = 1, .name = KIND_NAME}};
static uint32_t kinds(void *e, const evb_plugin_kind_t **out) { (void)e; *out = kinds_list; return 1; }
static int64_t reg(void *e, evb_event_cb cb, void *u, uint32_t m) { (void)e; (void)cb; (void)u; (void)m; return 1; }
static int unreg(void *e, int64_t id) { (void)e; (void)id; return 0; }
static int start(void *e) { (void)e; return 0; }
static int stop(void *e) { (void)e; return 0; }
static void fr(void *e) { free(e); }
static const char *err_msg(int e) { return e == -7 ? "refused" : "error"; }
static const evb_plugin_t table = {.abi_version = ABI, .size = SIZE, .name = "fake", .version = "0",
#ifndef NO_CREATE
  .create = create,
#endif
  .kinds = kinds, .register_callback = reg, .unregister_callback = unreg, .start = start, .stop = stop, .free = fr, .strerror = err_msg};
EVB_PLUGIN_EXPORT const evb_plugin_t *evb_plugin_entry(void) {
#ifdef NULL_ENTRY
  return NULL;
#else
  return &table;
#endif
}
`.replace('#include <stdlib.h>', '#include <stdio.h>\n#include <stdlib.h>'),
  );
  const so = join(dir, `${name}.so`);
  execFileSync('cc', ['-shared', '-fPIC', '-fvisibility=hidden', `-I${INCLUDE}`, ...defines.map((d) => `-D${d}`), '-o', so, src]);
  return so;
}

t.test('every way a plugin can be wrong: one message naming the file and the fault, no stack trace, a non-zero exit', async (t) => {
  const text = join(dir, 'text.so');
  writeFileSync(text, 'not a library\n');
  const noEntry = join(dir, 'no-entry.so');
  writeFileSync(join(dir, 'plain.c'), 'int unrelated(void) { return 1; }\n');
  execFileSync('cc', ['-shared', '-fPIC', '-o', noEntry, join(dir, 'plain.c')]);
  const cases: [string, string, number, RegExp | string][] = [
    ['missing file', '/nonexistent/plugin.so', 1, /^Engine plugin \/nonexistent\/plugin\.so cannot be read: .*No such file or directory.*\. \[EVB_STATUS_PLUGIN_NOT_FOUND\]$/],
    ['a directory', dir, 1, `Engine plugin ${dir} is a directory, not a shared object. [EVB_STATUS_PLUGIN_NOT_FOUND]`],
    ['not a shared object', text, 1, new RegExp(`^Engine plugin ${text} is not a loadable shared object: .+\\. \\[EVB_STATUS_PLUGIN_NOT_SHARED\\]$`)],
    ['no entry point', noEntry, 1, `Engine plugin ${noEntry} does not export evb_plugin_entry(): it is not an evbridge engine plugin. [EVB_STATUS_PLUGIN_NO_ENTRY]`],
    ['a NULL table', fakePlugin('null-entry', ['NULL_ENTRY']), 1, /evb_plugin_entry\(\) returned NULL\. \[EVB_STATUS_PLUGIN_NO_ENTRY\]$/],
    ['another major ABI version', fakePlugin('abi2', ['ABI=(2u<<16)']), 1, /was built for plugin ABI 2\.0; this bridge loads plugin ABI 1\.x\. Rebuild the plugin against native\/include\/evb_plugin\.h\. \[EVB_STATUS_PLUGIN_ABI\]$/],
    ['a table too small', fakePlugin('small', ['SIZE=16']), 1, /declares a table of 16 bytes; plugin ABI 1\.x requires at least \d+ \(through strerror\)\. \[EVB_STATUS_PLUGIN_TABLE\]$/],
    ['a required member NULL', fakePlugin('no-create', ['NO_CREATE']), 1, /: required member create is NULL\. \[EVB_STATUS_PLUGIN_TABLE\]$/],
    ['kinds that break the rules', fakePlugin('bad-kind', ['KIND_NAME="Bad Name"']), 1, /: kind 1 "Bad Name" breaks the rules .* \[EVB_STATUS_PLUGIN_DESCRIBE\]$/],
    ['create refusing its configuration', fakePlugin('refuse', ['REFUSE']), 2, /refused its configuration: the answer must be 42 \(refused\)\. \[EVB_STATUS_PLUGIN_CREATE\]$/],
  ];
  for (const [what, path, code, message] of cases) {
    const r = await runCli(['--http-port', '0', '--engine-plugin', path]);
    t.equal(r.code, code, `${what}: exit ${code}`);
    const line = r.stderr.replace(/^evbridge: /, '').trimEnd();
    if (typeof message === 'string') t.equal(line, message, `${what}: the message`);
    else t.match(line, message, `${what}: the message`);
    t.equal(r.stderr.split('\n').filter(Boolean).length, 1, `${what}: one line, no stack trace`);
  }
  // A table that grew in a later minor version loads (members past ours are ignored).
  const grown = fakePlugin('grown', ['SIZE=(sizeof(evb_plugin_t)+64)']);
  const d = await startDaemon(['--engine-plugin', grown]);
  t.match(d.logs.find((l) => l.msg === 'evbridge started'), { engine: { name: 'fake' }, kinds: [{ name: 'ok', number: 1 }] }, 'a larger table is tolerated');
  await d.stop();
});

t.test('the template: lines from a named pipe become events, with their subject', async (t) => {
  const fifo = join(dir, 'lines.fifo');
  execFileSync('mkfifo', [fifo]);
  const d = await startDaemon(['--engine-plugin', join(PLUGINS, 'libevb_template.so'), ...engine({ path: fifo, subject: 'logs.app', max_line_bytes: 10 })]);
  t.teardown(() => d.stop());
  const hello = await TestClient.connect(d.wsUrl);
  await hello.until(() => hello.msgs.some((m) => m.type === 'hello'));
  t.match(hello.msgs[0], { type: 'hello', kinds: ['line'], engine: { name: 'template', kinds: [{ name: 'line', number: 1 }] } }, 'the hello names the plugin\'s kinds');
  await hello.subscribe('l', { kinds: ['line'], subjects: ['logs.>'] });
  const fd = openSync(fifo, 'w');
  writeSync(fd, 'first\nsecond\n');
  closeSync(fd); // the writer goes away; the plugin keeps reading
  const fd2 = openSync(fifo, 'w');
  writeSync(fd2, 'a line longer than ten bytes\nlast\n');
  closeSync(fd2);
  await hello.until(() => hello.got('l').length === 4, 10000, 'four lines');
  t.same(
    hello.got('l').map((e) => [Buffer.from(e.payload, 'base64').toString(), e.subject, e.kind]),
    [
      ['first', 'logs.app', 'line'],
      ['second', 'logs.app', 'line'],
      ['a line lon', 'logs.app', 'line'],
      ['last', 'logs.app', 'line'],
    ],
  );
  t.equal(await metric(d.base, 'evbridge_engine_truncated_lines_total'), 1);
  t.equal(await metric(d.base, 'evbridge_engine_lines_total'), 4);
  hello.ws.close();
});

/** An Ethernet frame: IPv4 or IPv6 carrying UDP or TCP, or ARP, with a payload. */
function frame(p: { ip: 4 | 6 | 'arp'; proto?: 'udp' | 'tcp' | 'icmp'; dport?: number; payload: Buffer; vlan?: boolean }): Buffer {
  const eth = Buffer.alloc(p.vlan ? 18 : 14);
  eth.fill(0xaa, 0, 12);
  if (p.vlan) {
    eth.writeUInt16BE(0x8100, 12);
    eth.writeUInt16BE(7, 14);
  }
  const typeAt = p.vlan ? 16 : 12;
  if (p.ip === 'arp') {
    eth.writeUInt16BE(0x0806, typeAt);
    return Buffer.concat([eth, Buffer.alloc(28, 1), p.payload]);
  }
  eth.writeUInt16BE(p.ip === 4 ? 0x0800 : 0x86dd, typeAt);
  const protoNo = p.proto === 'tcp' ? 6 : p.proto === 'udp' ? 17 : p.ip === 4 ? 1 : 58;
  const l4 = p.proto === 'tcp' ? Buffer.alloc(20) : p.proto === 'udp' ? Buffer.alloc(8) : Buffer.alloc(8);
  if (p.proto === 'tcp' || p.proto === 'udp') {
    l4.writeUInt16BE(40000, 0);
    l4.writeUInt16BE(p.dport ?? 0, 2);
  }
  let ip: Buffer;
  if (p.ip === 4) {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip[9] = protoNo;
  } else {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip[6] = protoNo;
  }
  return Buffer.concat([eth, ip, l4, p.payload]);
}

/** A classic pcap file (microsecond stamps, Ethernet) of `frames`; `cut` cuts some to a snapshot length. */
function pcapFile(path: string, frames: { data: Buffer; cut?: number }[]) {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const recs = frames.map((f, i) => {
    const data = f.cut !== undefined ? f.data.subarray(0, f.cut) : f.data;
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1_700_000_000 + i, 0);
    h.writeUInt32LE(i, 4);
    h.writeUInt32LE(data.length, 8);
    h.writeUInt32LE(f.data.length, 12);
    return Buffer.concat([h, data]);
  });
  writeFileSync(path, Buffer.concat([head, ...recs]));
}

const havePcap = existsSync(join(PLUGINS, 'libevb_pcap.so'));

t.test('pcap: a capture file replayed through the daemon arrives once, in order, intact, with the right subjects', { skip: !havePcap && 'libevb_pcap.so was not built (libpcap-dev missing)' }, async (t) => {
  const frames: { data: Buffer; cut?: number; subject: string }[] = [];
  for (let i = 0; i < 400; i++) {
    const payload = Buffer.from(`packet ${i} `.repeat(1 + (i % 7)));
    const k = i % 8;
    const f =
      k < 3 ? { data: frame({ ip: 4, proto: 'udp', dport: 5140, payload }), subject: 'udp.5140' }
      : k === 3 ? { data: frame({ ip: 4, proto: 'tcp', dport: 443, payload }), subject: 'tcp.443' }
      : k === 4 ? { data: frame({ ip: 6, proto: 'udp', dport: 53, payload }), subject: 'udp.53' }
      : k === 5 ? { data: frame({ ip: 4, proto: 'icmp', payload }), subject: 'icmp' }
      : k === 6 ? { data: frame({ ip: 4, proto: 'udp', dport: 7000, payload, vlan: true }), subject: 'udp.7000' }
      : i % 16 === 7 ? { data: frame({ ip: 'arp', payload }), subject: 'arp' }
      : { data: frame({ ip: 4, proto: 'tcp', dport: 80, payload }), cut: 30, subject: 'other' }; // cut inside the IP header
    frames.push(f);
  }
  const file = join(dir, 'capture.pcap');
  pcapFile(file, frames);
  const d = await startDaemon(['--engine-plugin', join(PLUGINS, 'libevb_pcap.so'), ...engine({ file })]);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  // Resume from seq 1: the file may have been read before we subscribed.
  c.send({ type: 'subscribe', id: 'all', from_seq: 1 });
  c.send({ type: 'subscribe', id: 'udp', from_seq: 1, subjects: ['udp.*'] });
  c.send({ type: 'subscribe', id: 'https', from_seq: 1, subjects: ['tcp.443'] });
  await c.until(() => c.got('all').length === 400, 15000, 'every packet');
  const all = c.got('all');
  t.ok(all.every((e, i) => e.seq === i + 1 && e.source_seq === i && e.kind === 'packet'), 'once each, in file order');
  t.ok(all.every((e, i) => Buffer.from(e.payload, 'base64').equals((frames[i] as { cut?: number }).cut !== undefined ? (frames[i] as { data: Buffer }).data.subarray(0, 30) : (frames[i] as { data: Buffer }).data)), 'bytes intact (cut ones as captured)');
  t.same(all.map((e) => e.subject), frames.map((f) => f.subject), 'subjects from protocol and destination port');
  await c.until(() => c.got('udp').length === frames.filter((f) => f.subject.startsWith('udp.')).length && c.got('https').length === 50, 5000, 'the filtered subscriptions');
  t.ok(c.got('udp').every((e) => e.subject?.startsWith('udp.')), 'udp.* matches the UDP packets only');
  t.same(c.got('https').map((e) => e.seq), all.filter((e) => e.subject === 'tcp.443').map((e) => e.seq), 'tcp.443: exactly those, in order');
  t.equal(await metric(d.base, 'evbridge_engine_packets_total'), 400);
  t.equal(await metric(d.base, 'evbridge_engine_truncated_packets_total'), frames.filter((f) => f.cut !== undefined).length);
  t.equal(await metric(d.base, 'evbridge_callbacks_late_total'), 0, 'replayed packets are stamped when read: none late');
  c.ws.close();
});

t.test('pcap: live capture on lo with a BPF filter while datagrams are sent', { skip: !havePcap && 'libevb_pcap.so was not built (libpcap-dev missing)' }, async (t) => {
  const port = await freePort();
  let d: Awaited<ReturnType<typeof startDaemon>>;
  try {
    d = await startDaemon(['--engine-plugin', join(PLUGINS, 'libevb_pcap.so'), ...engine({ device: 'lo', filter: `udp dst port ${port}` })]);
  } catch (err) {
    const why = String((err as Error).message);
    if (/not permitted/.test(why)) {
      t.comment(`skipped: this process may not capture packets: ${why.split('\n')[0]}`);
      t.pass('live capture skipped for want of CAP_NET_RAW (the reason is above)');
      return;
    }
    throw err;
  }
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  await c.subscribe('p', { subjects: [`udp.${port}`] });
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((r) => s.send(`live ${i}`, port, '127.0.0.1', () => r()));
    await c.until(() => c.got('p').length > i, 5000, `captured datagram ${i}`);
  }
  await new Promise<void>((r) => s.send('not for us', port + 1, '127.0.0.1', () => r()));
  s.close();
  const got = c.got('p');
  t.equal(got.length, 20, 'each datagram once; the filter kept the others out');
  t.ok(got.every((e, i) => Buffer.from(e.payload, 'base64').subarray(-`live ${i}`.length).toString() === `live ${i}`), 'payload at the end of the frame');
  t.equal(await metric(d.base, 'evbridge_engine_kernel_drops_total'), 0);
  c.ws.close();
});

const haveMqtt = existsSync(join(PLUGINS, 'libevb_mqtt.so')) && existsSync('/usr/sbin/mosquitto');

/** A mosquitto broker on `port`, with persistence in `state`; resolves once it accepts connections. */
function broker(port: number, state: string): Promise<ChildProcess> {
  const conf = join(state, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${state}/\nmax_queued_messages 0\n`);
  const p = track(spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'ignore'] }));
  return within(
    new Promise((resolve, reject) => {
      let exited = false;
      p.once('exit', (code) => {
        exited = true;
        reject(new Error(`mosquitto exited with ${code}`));
      });
      const tryConnect = () => {
        if (exited) return;
        const sock = connect(port, '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          resolve(p);
        });
        sock.once('error', () => setTimeout(tryConnect, 50));
      };
      tryConnect();
    }),
    10000,
    'mosquitto to listen',
  );
}

t.test('mqtt: 10,000 messages on several topics; a pattern subscriber gets exactly the matching ones; the broker restarts mid-stream', { skip: !haveMqtt && 'libevb_mqtt.so or mosquitto missing (libmosquitto-dev, mosquitto)' }, async (t) => {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), 'evbridge-mosquitto-'));
  chmodSync(state, 0o777); // mosquitto started as root runs as user mosquitto, and must save its state here
  let b = await broker(port, state);
  t.teardown(() => b.kill('SIGKILL'));
  const d = await startDaemon([
    '--engine-plugin',
    join(PLUGINS, 'libevb_mqtt.so'),
    ...engine({ port, topics: ['plant/#'], qos: 1, client_id: 'evbridge-test', clean_session: false, reconnect_max_ms: 300 }),
    // This test is about patterns, not slow consumers: the whole run (about
    // 4 MB to this client) fits in the queue, so that a test process busy
    // publishing is never shed (CI once saw a 256-event chunk of "temps"
    // shed while it published).
    '--ws-queue-low-watermark-bytes',
    String(64 << 20),
    '--ws-queue-hard-limit-bytes',
    String(256 << 20),
  ]);
  t.teardown(() => d.stop());
  await waitMetric(d.base, 'evbridge_engine_connects_total', '', (v) => v === 1, 10000);
  const c = await TestClient.connect(d.wsUrl);
  await c.subscribe('temps', { subjects: ['plant.*.temp'] });
  await c.subscribe('all', { subjects: ['plant.>'] });
  const mqtt = await import('mqtt');
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'publisher', clean: false, reconnectPeriod: 100 });
  const topics = ['plant/a/temp', 'plant/b/temp', 'plant/a/pressure', 'plant/c/temp', 'plant/b/flow'];
  const N = 10_000;
  const acked: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    const topic = topics[i % topics.length] as string;
    acked.push(pub.publishAsync(topic, `${topic} ${i}`, { qos: 1 }));
    if (i === 4000) {
      // Stop the broker (it saves its persistence file), then start it again.
      const down = new Promise((r) => b.once('exit', r));
      b.kill('SIGTERM');
      await within(down, 10000, 'the broker to stop');
      b = await broker(port, state);
    }
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  await within(Promise.all(acked), 60000, 'every publish acknowledged by the broker');
  t.comment(`adapter: ${await metric(d.base, 'evbridge_engine_messages_total')} messages, ${await metric(d.base, 'evbridge_engine_disconnects_total')} disconnects`);
  await c.until(() => new Set(c.got('all').map((e) => Buffer.from(e.payload, 'base64').toString())).size === N, 60000, 'every message at the daemon');
  const seen = (sub: string) => {
    const firsts: string[] = [];
    const s = new Set<string>();
    for (const e of c.got(sub)) {
      const m = Buffer.from(e.payload, 'base64').toString();
      if (!s.has(m)) firsts.push(m);
      s.add(m);
    }
    return firsts;
  };
  const all = seen('all');
  t.equal(all.length, N, 'every message delivered (duplicates of QoS 1 redeliveries aside)');
  const temps = seen('temps');
  const wantTemps = Array.from({ length: N }, (_, i) => i).filter((i) => (topics[i % topics.length] as string).endsWith('/temp'));
  t.same(c.msgs.filter((m) => m.type === 'gap'), [], 'nothing was shed');
  t.equal(temps.length, wantTemps.length, 'the temp pattern matched exactly the temp topics');
  t.ok(c.got('temps').every((e) => /^plant\.[a-z]\.temp$/.test(e.subject ?? '')), 'and nothing else');
  for (const topic of topics) {
    const nums = all.filter((m) => m.startsWith(`${topic} `)).map((m) => Number(m.slice(topic.length + 1)));
    t.ok(nums.every((n, k) => k === 0 || n > (nums[k - 1] as number)), `${topic}: in publish order`);
  }
  t.ok((await metric(d.base, 'evbridge_engine_disconnects_total')) >= 1, 'the broker restart is counted as a disconnect');
  t.ok((await metric(d.base, 'evbridge_engine_connects_total')) >= 2, 'and the reconnect as a connect');
  const delivered = await metric(d.base, 'evbridge_events_delivered_total');
  t.equal(await metric(d.base, 'evbridge_engine_messages_total'), delivered, 'every message the adapter got reached the ring');
  t.equal(d.proc.exitCode, null, 'the daemon stayed up');
  await pub.endAsync();
  c.ws.close();
});

t.test('an old-protocol binary reader, which skips records by their length, reads events that carry subjects', async (t) => {
  // The decoder of protocol v1 revision 1 (before subjects), as a client
  // author wrote it from PROTOCOL.md: the payload follows the 48-byte header
  // and records are skipped by their length.
  function oldDecode(buf: Buffer) {
    const count = buf.readUInt32LE(4);
    let off = 16 + ((buf[3] as number) + 7 & ~7);
    const out: { seq: number; payload: Buffer }[] = [];
    for (let i = 0; i < count; i++) {
      const recLen = buf.readUInt32LE(off);
      const len = buf.readUInt32LE(off + 4);
      if (len > recLen - 48) throw new Error('payload past its record');
      out.push({ seq: Number(buf.readBigUInt64LE(off + 40)), payload: buf.subarray(off + 48, off + 48 + len) });
      off += recLen;
    }
    if (off !== buf.length) throw new Error('bytes after the last record');
    return out;
  }
  const d = await startDaemon(engine({ 'generator.threads': 1, 'generator.count': 200, 'generator.subjects': ['md.XNAS.AAPL'] }));
  t.teardown(() => d.stop());
  const { WebSocket } = await import('ws');
  const ws = new WebSocket(d.wsUrl, ['evbridge.v1.binary']);
  const got: { seq: number; payload: Buffer }[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) got.push(...oldDecode(data));
  });
  await within(new Promise((r) => ws.once('open', r)), 5000, 'open');
  ws.send(JSON.stringify({ type: 'subscribe', id: 'old', from_seq: 1 })); // no subjects: an old client's subscribe
  await within((async () => { while (got.length < 200) await new Promise((r) => setTimeout(r, 20)); })(), 10000, '200 events');
  t.ok(got.every((e, i) => e.seq === i + 1 && e.payload.length === 64 && e.payload.readBigUInt64LE(0) === BigInt(i)), 'seqs and payloads as before; the subject sits in what it skips');
  ws.close();
});
