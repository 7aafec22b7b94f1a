/**
 * Configuration: defaults, then a JSON file (`--config FILE`), then
 * `EVBRIDGE_*` environment variables, then command-line flags; the merged
 * result is validated with a zod schema. Every key `a.bKey` can be given as
 * the flag `--a-b-key` and the variable `EVBRIDGE_A_B_KEY`.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);

/** The schema; `.strict()` everywhere so a misspelt key is an error. */
export const ConfigSchema = z
  .object({
    http: z.object({ host, port }).strict(),
    udp: z.object({ enabled: z.boolean(), host, port }).strict(),
    tick: z.object({ hz: z.number().min(0).max(100000) }).strict(),
    generator: z
      .object({
        threads: z.number().int().min(0).max(64),
        rate: z.number().int().min(0),
        payloadBytes: z.number().int().min(8).max(65507),
        count: z.number().int().min(0),
      })
      .strict(),
    ring: z
      .object({
        capacityBytes: z
          .number()
          .int()
          .min(1 << 18)
          .max(2 ** 32)
          .refine((v) => (v & (v - 1)) === 0 || v === 2 ** 32, 'must be a power of two'),
        maxPayloadBytes: z.number().int().min(1).max(65536),
        lateThresholdMs: z.number().min(0),
      })
      .strict(),
    drain: z
      .object({
        batchMaxEvents: z.number().int().min(1).max(65536),
        batchMaxBytes: z.number().int().min(4096).max(64 << 20),
        batchesPerTurn: z.number().int().min(1).max(1024),
        coalesceMs: z.number().int().min(0).max(100),
      })
      .strict(),
    ws: z
      .object({
        path: z.string().startsWith('/'),
        maxConnections: z.number().int().min(1),
        maxClientFrameBytes: z.number().int().min(256).max(1 << 20),
        maxSubscriptions: z.number().int().min(1).max(1024),
        batchMaxEvents: z.number().int().min(1).max(65536),
        queueLowWatermarkBytes: z.number().int().min(1024),
        queueHardLimitBytes: z.number().int().min(1024),
        writeStallTimeoutMs: z.number().int().min(100),
        heartbeatIntervalMs: z.number().int().min(100),
        allowedOrigins: z.array(z.string().min(1)),
        token: z.string(),
      })
      .strict()
      .refine((w) => w.queueHardLimitBytes > w.queueLowWatermarkBytes, {
        message: 'must be larger than ws.queueLowWatermarkBytes',
        path: ['queueHardLimitBytes'],
      }),
    replay: z.object({ maxEvents: z.number().int().min(0).max(10_000_000), maxBytes: z.number().int().min(0) }).strict(),
    native: z.object({ engineLibrary: z.string(), bridgeLibrary: z.string() }).strict(),
    faultInjection: z.boolean(),
    shutdownTimeoutMs: z.number().int().min(100).max(60000),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) }).strict(),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

/** The embedded default configuration: UDP on 127.0.0.1:5140, a 1 Hz tick,
 * HTTP and WebSocket on 127.0.0.1:8080. */
export const DEFAULTS: Config = {
  http: { host: '127.0.0.1', port: 8080 },
  udp: { enabled: true, host: '127.0.0.1', port: 5140 },
  tick: { hz: 1 },
  generator: { threads: 0, rate: 0, payloadBytes: 64, count: 0 },
  ring: { capacityBytes: 8 << 20, maxPayloadBytes: 65536, lateThresholdMs: 1 },
  drain: { batchMaxEvents: 4096, batchMaxBytes: 1 << 20, batchesPerTurn: 2, coalesceMs: 1 },
  ws: {
    path: '/v1/stream',
    maxConnections: 1000,
    maxClientFrameBytes: 64 * 1024,
    maxSubscriptions: 16,
    batchMaxEvents: 256,
    queueLowWatermarkBytes: 1 << 20,
    queueHardLimitBytes: 8 << 20,
    writeStallTimeoutMs: 10000,
    heartbeatIntervalMs: 30000,
    allowedOrigins: [],
    token: '',
  },
  replay: { maxEvents: 100_000, maxBytes: 16 << 20 },
  native: { engineLibrary: '', bridgeLibrary: '' },
  faultInjection: false,
  shutdownTimeoutMs: 5000,
  log: { level: 'info' },
};

/** A configuration key, its flag and environment names, and its type. */
export interface KeySpec {
  path: string[];
  flag: string;
  env: string;
  kind: 'number' | 'boolean' | 'string' | 'list';
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

function leaves(obj: object, prefix: string[] = []): KeySpec[] {
  return Object.entries(obj).flatMap(([k, v]): KeySpec[] => {
    const path = [...prefix, k];
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return leaves(v, path);
    const kind = Array.isArray(v) ? 'list' : typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'string';
    return [{ path, flag: path.map(kebab).join('-'), env: `EVBRIDGE_${path.map(snake).join('_')}`, kind }];
  });
}

/** Every leaf key of the configuration. */
export const KEYS: readonly KeySpec[] = leaves(DEFAULTS);

/** A bad configuration: `message` names the key, the value's origin and what was expected. */
export class ConfigError extends Error {
  readonly code = 'EVB_ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Turns a flag or environment string into the key's type; leaves it a
 * string when it does not parse, so that validation names the key. */
function coerce(spec: KeySpec, raw: string): unknown {
  switch (spec.kind) {
    case 'number': {
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      return Number.isFinite(n) ? n : raw;
    }
    case 'boolean':
      return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
    case 'list':
      return raw === '' ? [] : raw.split(',').map((s) => s.trim());
    default:
      return raw;
  }
}

type Tree = Record<string, unknown>;

function setPath(tree: Tree, path: string[], value: unknown) {
  let node = tree;
  for (const k of path.slice(0, -1)) {
    const next = node[k];
    node[k] = next !== null && typeof next === 'object' && !Array.isArray(next) ? { ...(next as Tree) } : {};
    node = node[k] as Tree;
  }
  node[path[path.length - 1] as string] = value;
}

function merge(base: unknown, over: unknown): unknown {
  if (base && over && typeof base === 'object' && typeof over === 'object' && !Array.isArray(base) && !Array.isArray(over)) {
    const out: Tree = { ...(base as Tree) };
    for (const [k, v] of Object.entries(over as Tree)) out[k] = merge(out[k], v);
    return out;
  }
  return over === undefined ? base : over;
}

export interface ConfigSources {
  /** Path of a JSON file, if any. */
  file?: string;
  /** Process environment. */
  env?: NodeJS.ProcessEnv;
  /** Flag values by flag name (without `--`), as strings. */
  flags?: Record<string, string | undefined>;
}

/**
 * Builds the configuration from its sources.
 * @throws ConfigError naming the first bad key and its origin.
 */
export function loadConfig(src: ConfigSources = {}): Config {
  const origin = new Map<string, string>();
  let tree: unknown = DEFAULTS;
  if (src.file) {
    let text: string;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`Cannot read config file ${src.file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`Config file ${src.file} is not valid JSON: ${(err as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(`Config file ${src.file} must hold a JSON object`);
    }
    tree = merge(tree, parsed);
    for (const k of KEYS) origin.set(k.path.join('.'), `config file ${src.file}`);
  }
  const overrides: Tree = {};
  for (const spec of KEYS) {
    const fromEnv = src.env?.[spec.env];
    if (fromEnv !== undefined) {
      setPath(overrides, spec.path, coerce(spec, fromEnv));
      origin.set(spec.path.join('.'), `environment variable ${spec.env}`);
    }
  }
  for (const spec of KEYS) {
    const fromFlag = src.flags?.[spec.flag];
    if (fromFlag !== undefined) {
      setPath(overrides, spec.path, coerce(spec, fromFlag));
      origin.set(spec.path.join('.'), `flag --${spec.flag}`);
    }
  }
  tree = merge(tree, overrides);
  const result = ConfigSchema.safeParse(tree);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new ConfigError('Invalid configuration');
  if (issue.code === 'unrecognized_keys') {
    const key = [...issue.path, issue.keys[0]].join('.');
    throw new ConfigError(`Unknown config key "${key}"${src.file ? ` in config file ${src.file}` : ''}.`);
  }
  const key = issue.path.join('.');
  const from = origin.get(key) ?? 'the defaults';
  throw new ConfigError(`Invalid config key "${key}" (from ${from}): ${issue.message}.`);
}
