/**
 * The live status page (served at `/`): polls `/api/status` once a second
 * while it is open and draws the data path with rates and drops by stage,
 * latency quantiles, charts of the last minutes (uPlot), the connected
 * clients, the engine and the last panics. Bundled with uPlot into
 * dist/status/page.js by `npm run build`; no network access beyond the
 * daemon. A token in the page's URL (`?access_token=`) is passed on to the
 * data requests. Every number shown for a metric carries its
 * `data-metric` name, so tests can compare the page with /metrics.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './page.css';
import type { Status } from '../status.js';

const POLL_MS = 1000;
/** Points kept for the charts: five minutes at one a second. */
const HISTORY = 300;

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const token = new URLSearchParams(location.search).get('access_token');

function el(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

const fmt = (n: number) => (Math.abs(n) >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : Math.abs(n) >= 1e4 ? `${(n / 1e3).toFixed(1)} k` : `${Math.round(n * 10) / 10}`);
const bytes = (n: number) => (n >= 1 << 20 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const secs = (s: number | null) => (s === null ? '–' : s < 1e-3 ? `${(s * 1e6).toFixed(0)} µs` : s < 1 ? `${(s * 1e3).toFixed(2)} ms` : `${s.toFixed(2)} s`);
const ago = (ms: number) => {
  const s = Math.round((Date.now() - ms) / 1000);
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
};

/** Sum of every sample of a metric (all label values). */
function total(m: Record<string, number>, name: string): number {
  let sum = 0;
  for (const [k, v] of Object.entries(m)) if (k === name || k.startsWith(`${name}{`)) sum += v;
  return sum;
}

/** `name{label="v"}` samples of a metric, by label value. */
function byLabel(m: Record<string, number>, name: string): [string, number][] {
  return Object.entries(m)
    .filter(([k]) => k.startsWith(`${name}{`))
    .map(([k, v]) => [/="([^"]*)"/.exec(k)?.[1] ?? k, v]);
}

/** One number bound to a metric (its total), with its rate. */
function metricValue(name: string, label: string, m: Record<string, number>, rate: number | undefined, drop = false): HTMLElement {
  return el(
    'div',
    { class: drop && total(m, name) > 0 ? 'value drop' : 'value' },
    el('span', { class: 'label' }, label),
    el('span', { class: 'total', 'data-metric': name }, String(total(m, name))),
    el('span', { class: 'rate' }, rate === undefined ? '' : `${fmt(rate)}/s`),
  );
}

let prev: Status | undefined;
let prevAt = 0;
const series: number[][] = [[], [], [], [], []]; // time, in, out, ring drops, ws drops
let flow: uPlot | undefined;
let drops: uPlot | undefined;

function chart(target: HTMLElement, title: string, names: string[], colors: string[], data: number[][]): uPlot {
  return new uPlot(
    {
      title,
      width: Math.min(560, Math.max(320, target.clientWidth || 560)),
      height: 200,
      series: [{}, ...names.map((label, i) => ({ label, stroke: colors[i], width: 2 }))],
      axes: [{}, { values: (_u, v) => v.map((x) => fmt(x)) }],
    },
    data as uPlot.AlignedData,
    target,
  );
}

function render(st: Status, dt: number) {
  const m = st.metrics;
  const rate = (name: string) => (prev && dt > 0 ? (total(m, name) - total(prev.metrics, name)) / dt : undefined);
  $('version').textContent = st.version;
  $('identity').textContent = `epoch ${st.epoch} · up ${ago(st.startedAt)} · node ${st.node}`;
  $('links').replaceChildren(
    ...[['metrics', st.links.metrics], ['healthz', st.links.healthz], ['readyz', st.links.readyz]].map(([t, h]) => el('a', { href: h as string }, t as string)),
    el('code', {}, `ws://${location.host}${st.links.ws}`),
  );

  // The data path: engine -> bridge -> ring -> drain -> fan-out -> clients.
  const stage = (title: string, ...rows: HTMLElement[]) => el('div', { class: 'stage' }, el('h3', {}, title), ...rows);
  const dropsOf = (name: string) =>
    byLabel(m, name)
      .filter(([, v]) => v > 0)
      .map(([reason]) => metricValue(`${name}{reason="${reason}"}`, reason, { [`${name}{reason="${reason}"}`]: m[`${name}{reason="${reason}"}`] ?? 0 }, rate(`${name}{reason="${reason}"}`), true));
  const cap = m.evbridge_ring_capacity_bytes ?? 1;
  const used = m.evbridge_ring_used_bytes ?? 0;
  const arrow = () => el('div', { class: 'arrow' }, '→');
  $('path').replaceChildren(
    stage(
      `engine: ${st.engine.name}`,
      // The engine's own drop counters (named *drops_total by convention,
      // native/plugins/README.md): events lost before they reached the callback.
      ...Object.keys(m)
        .filter((k) => k.startsWith('evbridge_engine_') && k.endsWith('drops_total'))
        .map((k) => metricValue(k, k.slice('evbridge_engine_'.length), m, rate(k), true)),
      metricValue('evbridge_callbacks_total', 'callbacks', m, rate('evbridge_callbacks_total')),
    ),
    arrow(),
    stage(
      'bridge',
      metricValue('evbridge_callbacks_accepted_total', 'accepted', m, rate('evbridge_callbacks_accepted_total')),
      ...dropsOf('evbridge_callbacks_invalid_total'),
      metricValue('evbridge_callbacks_stale_total', 'stale', m, rate('evbridge_callbacks_stale_total'), true),
      metricValue('evbridge_callbacks_panicked_total', 'panicked', m, rate('evbridge_callbacks_panicked_total'), true),
    ),
    arrow(),
    stage(
      'ring',
      el('div', { class: 'bar' }, el('div', { class: 'fill', style: `width:${Math.min(100, (100 * used) / cap)}%` })),
      el('div', { class: 'value' }, el('span', { class: 'label' }, 'occupancy'), el('span', { 'data-metric': 'evbridge_ring_used_bytes' }, String(used)), el('span', { class: 'rate' }, `of ${bytes(cap)}`)),
      ...dropsOf('evbridge_callbacks_dropped_total'),
    ),
    arrow(),
    stage('drain', metricValue('evbridge_events_delivered_total', 'delivered', m, rate('evbridge_events_delivered_total'))),
    arrow(),
    stage('fan-out', metricValue('evbridge_ws_events_sent_total', 'sent', m, rate('evbridge_ws_events_sent_total')), ...dropsOf('evbridge_ws_events_dropped_total')),
    arrow(),
    stage(
      'clients',
      metricValue('evbridge_ws_connections', 'connected', m, undefined),
      metricValue('evbridge_ws_distinct_filters', 'distinct filters', m, undefined),
      ...dropsOf('evbridge_ws_disconnects_total'),
    ),
  );

  const q = st.quantiles;
  const tile = (label: string, value: string, metric?: string) =>
    el('div', { class: 'tile' }, el('div', { class: 'label' }, label), el('div', metric ? { class: 'big', 'data-metric': metric } : { class: 'big' }, value));
  $('tiles').replaceChildren(
    tile('ring occupancy', `${((100 * used) / cap).toFixed(1)} %`),
    tile('callback delay p50 / p99', `${secs(q.callbackDelay.p50)} / ${secs(q.callbackDelay.p99)}`),
    tile('event age at drain p50 / p99', `${secs(q.ageDrain.p50)} / ${secs(q.ageDrain.p99)}`),
    tile('event age at send p50 / p99', `${secs(q.ageSend.p50)} / ${secs(q.ageSend.p99)}`),
    tile('late callbacks', String(m.evbridge_callbacks_late_total ?? 0), 'evbridge_callbacks_late_total'),
    tile('panicked callbacks', String(m.evbridge_callbacks_panicked_total ?? 0)),
  );

  // Charts: events in (accepted) and out (sent), drops, a point a second.
  const r = (name: string) => Math.max(0, rate(name) ?? 0);
  if (prev) {
    const point = [Date.now() / 1000, r('evbridge_callbacks_accepted_total'), r('evbridge_ws_events_sent_total'), r('evbridge_callbacks_dropped_total') + r('evbridge_callbacks_invalid_total'), r('evbridge_ws_events_dropped_total')];
    point.forEach((v, i) => {
      const s = series[i] as number[];
      s.push(v);
      if (s.length > HISTORY) s.shift();
    });
    const [t, a, b, c, d] = series as [number[], number[], number[], number[], number[]];
    if (!flow) flow = chart($('chart-flow'), 'events/s', ['into the ring', 'sent to clients'], ['#2a7', '#36c'], [t, a, b]);
    else flow.setData([t, a, b]);
    if (!drops) drops = chart($('chart-drops'), 'drops/s', ['bridge (ring full, invalid)', 'clients (slow, closed)'], ['#c33', '#e90'], [t, c, d]);
    else drops.setData([t, c, d]);
  }

  $('client-count').textContent = `${st.clientCount} connected${st.clientCount > st.clients.length ? ` (the first ${st.clients.length} listed)` : ''}`;
  $('clients').querySelector('tbody')?.replaceChildren(
    ...st.clients.map((c) => {
      const sent = c.subscriptions.reduce((n, s) => n + s.counts.sent, 0);
      const dropped = c.subscriptions.reduce((n, s) => n + Object.values(s.counts.dropped).reduce((a, b) => a + (b ?? 0), 0), 0);
      const subs = c.subscriptions.map((s) => `${s.id}${s.replaying ? ' (replaying)' : ''}: ${[s.kinds && `kinds ${s.kinds.join(',')}`, s.sources && `sources ${s.sources.join(',')}`, s.subjects && `subjects ${s.subjects.join(' ')}`].filter(Boolean).join('; ') || 'everything'}`);
      return el('tr', {}, el('td', {}, c.remote), el('td', {}, c.user === null ? '–' : `${c.user}${c.expires !== null ? ` (token until ${new Date(c.expires * 1000).toLocaleTimeString()})` : ''}`), el('td', {}, c.encoding), el('td', {}, ago(c.connectedAt)), el('td', {}, subs.join(' | ')), el('td', {}, bytes(c.queuedBytes)), el('td', {}, bytes(c.inflightBytes)), el('td', {}, fmt(sent)), el('td', {}, fmt(dropped)));
    }),
  );

  const e = st.engine;
  $('engine').replaceChildren(
    el('p', {}, `${e.name} ${e.version} — ${e.path}`),
    el('p', {}, `kinds: ${e.kinds.map((k) => `${k.name} (${k.number})`).join(', ')}`),
    el('ul', {}, ...e.sources.map((s) => el('li', {}, `source ${s.id}: ${s.name} (${s.kind}) ${s.detail}`))),
    el('div', { class: 'counters' }, ...Object.keys(m).filter((k) => k.startsWith('evbridge_engine_')).map((k) => metricValue(k, k.slice('evbridge_engine_'.length), m, rate(k)))),
  );
  $('panics').replaceChildren(...st.panics.slice().reverse().map((p) => el('li', {}, `${new Date(p.time).toISOString()} ${p.message}`)));
}

async function poll() {
  try {
    const r = await fetch(`/api/status${token ? `?access_token=${encodeURIComponent(token)}` : ''}`, { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const st = (await r.json()) as Status;
    const now = performance.now();
    render(st, prev ? (now - prevAt) / 1000 : 0);
    prev = st;
    prevAt = now;
    $('status-line').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
  } catch (err) {
    $('status-line').textContent = `cannot reach the daemon: ${(err as Error).message}`;
  }
  setTimeout(poll, POLL_MS);
}

void poll();
