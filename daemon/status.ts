/**
 * The operator's view: the JSON behind the live page at `/` (GET
 * `/api/status`), built on request only, from the same registry `/metrics`
 * exposes (so the two cannot disagree), plus what Prometheus does not carry:
 * the connected clients, the last panic messages, the engine's description.
 *
 * Cost: nothing while no page is open (no timer, no sampling); one registry
 * read and one pass over the sessions per request. Threading: main thread.
 */
import type { EngineDescription } from './engine.js';
import type { Metrics } from './metrics.js';
import type { SessionSummary } from './fanout/session.js';

/** A histogram's quantile, from cumulative buckets (Prometheus's
 * histogram_quantile: linear interpolation inside the bucket). Seconds;
 * null when the histogram is empty. */
export function quantile(q: number, buckets: readonly { le: number; count: number }[]): number | null {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe; // in the +Inf bucket: the highest finite bound
      const inBucket = b.count - prevCount;
      return inBucket === 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/** Everything the page shows. Counters are totals; the page derives rates
 * from two successive answers. */
export interface Status {
  version: string;
  node: string;
  epoch: string;
  startedAt: number;
  uptimeSeconds: number;
  engine: Pick<EngineDescription, 'name' | 'version' | 'path' | 'kinds' | 'sources'>;
  /** Every sample of every evbridge_* metric but Node's defaults:
   * `name{label="value"}` -> value, as in /metrics. */
  metrics: Record<string, number>;
  quantiles: {
    callbackDelay: { p50: number | null; p99: number | null };
    ageDrain: { p50: number | null; p99: number | null };
    ageSend: { p50: number | null; p99: number | null };
  };
  panics: { time: number; message: string }[];
  clients: SessionSummary[];
  /** Clients connected, including any past the listed ones. */
  clientCount: number;
  links: { metrics: string; healthz: string; readyz: string; ws: string };
}

/** Clients listed at most (the page shows the count of the rest). */
export const STATUS_CLIENTS_MAX = 200;

export interface StatusSource {
  version: string;
  epoch: string;
  startedAt: number;
  wsPath: string;
  engine: EngineDescription;
  metrics: Metrics;
  panics(): { time: number; message: string }[];
  sessions(): SessionSummary[];
}

/** Builds the status (one registry read). */
export async function buildStatus(s: StatusSource): Promise<Status> {
  s.metrics.refresh();
  const all = await s.metrics.registry.getMetricsAsJSON();
  const metrics: Record<string, number> = {};
  const hist = new Map<string, { le: number; count: number }[]>();
  for (const m of all) {
    if (m.name.startsWith('evbridge_process_') || m.name.startsWith('evbridge_nodejs_')) continue;
    for (const v of m.values) {
      const name = (v as { metricName?: string }).metricName ?? m.name;
      const labels = Object.entries(v.labels ?? {}).filter(([k]) => k !== 'le');
      const key = `${name}${labels.length ? `{${labels.map(([k, x]) => `${k}="${x}"`).join(',')}}` : ''}`;
      if (name.endsWith('_bucket')) {
        const le = (v.labels as { le?: string | number }).le;
        const list = hist.get(key) ?? [];
        list.push({ le: le === '+Inf' ? Infinity : Number(le), count: v.value });
        hist.set(key, list);
        continue;
      }
      metrics[key] = v.value;
    }
  }
  const q = (key: string) => {
    const b = hist.get(key) ?? [];
    return { p50: quantile(0.5, b), p99: quantile(0.99, b) };
  };
  const sessions = s.sessions();
  const d = s.engine;
  return {
    version: s.version,
    node: process.version,
    epoch: s.epoch,
    startedAt: s.startedAt,
    uptimeSeconds: Math.round((Date.now() - s.startedAt) / 1000),
    engine: { name: d.name, version: d.version, path: d.path, kinds: d.kinds, sources: d.sources },
    metrics,
    quantiles: {
      callbackDelay: q('evbridge_callback_delay_seconds_bucket'),
      ageDrain: q('evbridge_event_age_seconds_bucket{stage="drain"}'),
      ageSend: q('evbridge_event_age_seconds_bucket{stage="send"}'),
    },
    panics: s.panics(),
    clients: sessions.slice(0, STATUS_CLIENTS_MAX),
    clientCount: sessions.length,
    links: { metrics: '/metrics', healthz: '/healthz', readyz: '/readyz', ws: s.wsPath },
  };
}
