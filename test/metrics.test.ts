// /metrics: the names dashboards rely on, and `promtool check metrics`.
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import t from 'tap';
import { TestClient, startDaemon, waitMetric } from './helpers/daemon.js';

const REQUIRED = [
  'evbridge_callbacks_total',
  'evbridge_callbacks_accepted_total',
  'evbridge_callbacks_dropped_total',
  'evbridge_callbacks_panicked_total',
  'evbridge_callbacks_late_total',
  'evbridge_callbacks_invalid_total',
  'evbridge_callbacks_stale_total',
  'evbridge_callback_delay_seconds',
  'evbridge_events_delivered_total',
  'evbridge_event_age_seconds',
  'evbridge_ring_used_bytes',
  'evbridge_ring_capacity_bytes',
  'evbridge_ws_connections',
  'evbridge_ws_events_sent_total',
  'evbridge_ws_events_dropped_total',
  'evbridge_ws_disconnects_total',
  'evbridge_ws_upgrades_refused_total',
  'evbridge_ws_distinct_filters',
  'evbridge_http_connections',
  'evbridge_http_connections_refused_total',
  'evbridge_panic_messages_dropped_total',
  'evbridge_panic_log_suppressed_total',
  'evbridge_engine_dispatched_total',
  'evbridge_engine_callback_errors_total',
  'evbridge_engine_udp_receive_errors_total',
  'evbridge_engine_udp_kernel_drops_total',
  'evbridge_process_cpu_seconds_total',
  'evbridge_nodejs_eventloop_lag_seconds',
];

const promtool = spawnSync('promtool', ['--version']).status === 0;

t.test('every documented metric is exposed and promtool accepts the page', async (t) => {
  const d = await startDaemon(['--engine-set', 'tick.hz=50']);
  t.teardown(() => d.stop());
  const c = await TestClient.connect(d.wsUrl);
  t.teardown(() => c.ws.close());
  await c.subscribe('all');
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.send('x', d.udpPort, '127.0.0.1', () => r()));
  sock.close();
  await waitMetric(d.base, 'evbridge_ws_events_sent_total', '', (v) => v > 5);
  const res = await fetch(`${d.base}/metrics`);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  for (const name of REQUIRED) t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  t.match(text, /^evbridge_callback_delay_seconds_bucket\{le="0\.001"\} \d+$/m, 'delay histogram in seconds, 1 ms bound');
  t.match(text, /^evbridge_event_age_seconds_count\{stage="send"\} [1-9]/m, 'age at send observed');
  if (!promtool) {
    t.fail('promtool is not installed (.ci/run installs Debian package prometheus)');
    return;
  }
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text });
  t.equal(check.status, 0, `promtool check metrics: ${check.stdout.toString()}${check.stderr.toString()}`);
});
