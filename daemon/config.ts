/**
 * Configuration: defaults, then a JSON file (`--config FILE`), then
 * `EVBRIDGE_*` environment variables, then command-line flags; the merged
 * result is validated with a zod schema. Every key `a.bKey` can be given as
 * the flag `--a-b-key` and the variable `EVBRIDGE_A_B_KEY`. The schema is the
 * one description of every key: its meaning (`describe`) feeds `--help` and
 * the README's table (test/config.test.ts checks the table is current).
 *
 * The engine plugin's own block, `engine.config`, is any JSON object, handed
 * to the plugin as is; besides the file, `--engine-config JSON` (or
 * `EVBRIDGE_ENGINE_CONFIG`) replaces it and `--engine-set KEY=VALUE` (any
 * number of times) sets one key in it (VALUE is parsed as JSON when it can
 * be, else taken as a string).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { Errors, type EvbError } from './errors.js';

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);

/** The schema; `.strict()` everywhere so a misspelt key is an error. */
export const ConfigSchema = z
  .object({
    engine: z
      .object({
        plugin: z.string().describe('path of the engine plugin, a shared object exporting evb_plugin_entry; empty = the built-in reference engine'),
        config: z
          .record(z.string(), z.unknown())
          .describe('the plugin\'s own configuration block, a JSON object handed to it as is (the reference engine\'s keys: README, "The reference engine")'),
      })
      .strict(),
    http: z
      .object({
        host: host.describe('address for HTTP and WebSocket'),
        port: port.describe('port for HTTP and WebSocket (0 picks one; see the start-up log)'),
        maxConnections: z.number().int().min(1).describe('open TCP connections at most, HTTP and WebSocket together; more are closed at once and counted'),
        headersTimeoutMs: z.number().int().min(1000).describe('a connection that has not sent complete request headers in this time is closed (slowloris, idle sockets)'),
        requestTimeoutMs: z.number().int().min(1000).describe('a request not completed in this time is closed'),
        keepAliveTimeoutMs: z.number().int().min(100).describe('an idle keep-alive HTTP connection is closed after this time'),
      })
      .strict(),
    ring: z
      .object({
        capacityBytes: z
          .number()
          .int()
          .min(1 << 18)
          .max(2 ** 32)
          .refine((v) => (v & (v - 1)) === 0 || v === 2 ** 32, 'must be a power of two')
          .describe('ring size in bytes, a power of two'),
        maxPayloadBytes: z.number().int().min(1).max(16 << 20).describe('largest payload accepted, bytes; larger events count as invalid too_long'),
        lateThresholdMs: z.number().min(0).describe('callback delay beyond which an event counts as late, ms'),
      })
      .strict(),
    drain: z
      .object({
        batchMaxEvents: z.number().int().min(1).max(65536).describe('events per drain call'),
        batchMaxBytes: z.number().int().min(4096).max(64 << 20).describe('bytes per drain call'),
        batchesPerTurn: z.number().int().min(1).max(1024).describe('drain calls before yielding to I/O'),
        coalesceMs: z
          .number()
          .int()
          .min(0)
          .max(100)
          .describe(
            'while events keep arriving without filling batches, wait this long between drains so each drain and each socket write carries many (the first event after idle still goes out at once); 0 drains again at once. At 100 k events/s to one client it cut the daemon\'s CPU by 40 % and raised latency p50 from 0.08 to 0.7 ms (bench/e2e)',
          ),
      })
      .strict(),
    ws: z
      .object({
        path: z.string().startsWith('/').describe('WebSocket path'),
        maxConnections: z.number().int().min(1).describe('WebSocket connections at most (503 beyond)'),
        maxClientFrameBytes: z.number().int().min(256).max(1 << 20).describe('largest client frame, bytes (1009 beyond)'),
        maxSubscriptions: z.number().int().min(1).max(1024).describe('subscriptions per connection'),
        maxSubscribesPerSecond: z
          .number()
          .int()
          .min(1)
          .describe('subscribe and unsubscribe messages per connection per second, with a burst of as many; past it the connection is closed with 4010'),
        maxDistinctFilters: z
          .number()
          .int()
          .min(1)
          .describe('distinct (filter, encoding) pairs across all connections: each costs one encoding of every matching event (README, "Limits")'),
        batchMaxEvents: z.number().int().min(1).max(65536).describe('events per events frame'),
        jsonEncoder: z
          .enum(['native', 'js'])
          .describe('who writes the JSON subprotocol\'s events: native (the bridge\'s JSON writer, one FFI call per frame) or js (the JavaScript writer it replaced, same bytes; the edge role always uses js)'),
        queueLowWatermarkBytes: z
          .number()
          .int()
          .min(1024)
          .describe('bytes queued for one connection past which its oldest event frames are dropped (gap notices)'),
        queueHardLimitBytes: z
          .number()
          .int()
          .min(1024)
          .describe('bytes queued and in flight for one connection, events and replies alike, past which it is disconnected (4008)'),
        writeStallTimeoutMs: z.number().int().min(100).describe('a write that makes no progress this long disconnects (gap notice, then 4008)'),
        heartbeatIntervalMs: z.number().int().min(100).describe('ping interval; a missed pong terminates'),
        allowedOrigins: z.array(z.string().min(1)).describe('Origin allow-list (comma-separated in flags and env); empty allows any'),
        token: z
          .string()
          .describe('shared bearer token: with ws.auth "token" (or "auto") required for the WebSocket; when set, also required for /debug and the status page in every mode'),
        auth: z
          .enum(['auto', 'none', 'token', 'jwt'])
          .describe('who may subscribe: none, the shared ws.token, or JWT access tokens with per-subscriber rights (README, "Access: tokens and rights"); auto is token when ws.token is set, else none'),
        jwt: z
          .object({
            keyFile: z
              .string()
              .describe('the verification key: a file of raw bytes is an HS256 secret (32 bytes or more), a PEM public key is RS256, ES256 or EdDSA by its type, a JWKS holds public keys chosen by kid; re-read on SIGHUP'),
            audience: z.string().describe('required aud claim; empty: not checked'),
            issuer: z.string().describe('required iss claim; empty: not checked'),
            clockToleranceSeconds: z.number().int().min(0).max(300).describe('leeway on exp and nbf, seconds'),
            claim: z.string().min(1).describe('the claim holding a token\'s rights: {"kinds": [...], "sources": [...], "subjects": [...]}'),
          })
          .strict(),
      })
      .strict()
      .refine((w) => w.queueHardLimitBytes > w.queueLowWatermarkBytes, {
        message: 'must be larger than ws.queueLowWatermarkBytes',
        path: ['queueHardLimitBytes'],
      }),
    replay: z
      .object({
        maxEvents: z.number().int().min(0).max(10_000_000).describe('events kept for resume (from_seq); 0 turns replay off'),
        maxBytes: z
          .number()
          .int()
          .min(0)
          .max(2 ** 31)
          .describe('bytes of ring records kept for resume: one buffer of this size, filled as a circular log (100 000 records of 64-byte payloads take 12.8 MB)'),
      })
      .strict(),
    native: z.object({ bridgeLibrary: z.string().describe('path of libevbridge.so; empty = the built one') }).strict(),
    role: z
      .enum(['ingest', 'edge'])
      .describe('ingest: run the engine plugin, serve subscribers, and publish to NATS JetStream when nats.servers is set; edge: no engine and no native library, serve the stream read from JetStream (README, "Scaling out")'),
    nats: z
      .object({
        servers: z.array(z.string().min(1)).describe('NATS servers, host:port (comma-separated in flags and env); empty: no NATS'),
        stream: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 characters of [A-Za-z0-9_-]')
          .describe('the JetStream stream of events (the ingest creates it, and <stream>_META for the engine description)'),
        subject: z
          .string()
          .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be dot-separated tokens of [A-Za-z0-9_-]')
          .describe('subject of the events messages; the engine description goes to <subject>.meta'),
        replicas: z.number().int().min(1).max(5).describe('stream replicas, when the ingest creates the streams (3 on a 3-node cluster)'),
        maxBytes: z.number().int().min(1 << 20).describe('stream retention in bytes (oldest messages leave first); a client resumes on any edge within it'),
        maxAgeSeconds: z.number().int().min(0).describe('stream retention in seconds; 0: no age limit'),
        messageMaxEvents: z
          .number()
          .int()
          .min(1)
          .max(65536)
          .describe('events per JetStream message at most; fewer, larger messages cost NATS less per event (1024 of 64-byte events published 1.39 M events/s to one node here, 256 only 0.95 M; bench/NATS.md)'),
        messageMaxBytes: z
          .number()
          .int()
          .min(4096)
          .max(1 << 20)
          .describe('record bytes per JetStream message at most (NATS max_payload is 1 MiB by default)'),
        maxPendingBytes: z
          .number()
          .int()
          .min(1 << 16)
          .describe('bytes queued or unacknowledged at the ingest; past it, events are dropped and counted (evbridge_nats_events_dropped_total) and edges get a gap'),
        maxInflightMessages: z.number().int().min(1).max(65536).describe('messages published and not yet acknowledged at most'),
        ackTimeoutMs: z.number().int().min(100).max(60000).describe('how long a publish waits for its acknowledgement before it is sent again'),
      })
      .strict(),
    faultInjection: z.boolean().describe('enable the /debug endpoints (fault injection; tests only), and the built-in engine\'s fault injection'),
    shutdownTimeoutMs: z.number().int().min(100).max(60000).describe('graceful shutdown budget; past it the daemon logs its counters and exits 1'),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).describe('pino level') }).strict(),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

/** The embedded default configuration: the reference engine with UDP on
 * 127.0.0.1:5140 and a 1 Hz tick (its own defaults), HTTP and WebSocket on
 * 127.0.0.1:8080. */
export const DEFAULTS: Config = {
  engine: { plugin: '', config: {} },
  http: { host: '127.0.0.1', port: 8080, maxConnections: 2048, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5000 },
  ring: { capacityBytes: 8 << 20, maxPayloadBytes: 65536, lateThresholdMs: 1 },
  drain: { batchMaxEvents: 4096, batchMaxBytes: 1 << 20, batchesPerTurn: 2, coalesceMs: 1 },
  ws: {
    path: '/v1/stream',
    maxConnections: 1000,
    maxClientFrameBytes: 64 * 1024,
    maxSubscriptions: 16,
    maxSubscribesPerSecond: 20,
    maxDistinctFilters: 64,
    batchMaxEvents: 256,
    jsonEncoder: 'native',
    queueLowWatermarkBytes: 1 << 20,
    queueHardLimitBytes: 8 << 20,
    writeStallTimeoutMs: 10000,
    heartbeatIntervalMs: 30000,
    allowedOrigins: [],
    token: '',
    auth: 'auto',
    jwt: { keyFile: '', audience: '', issuer: '', clockToleranceSeconds: 5, claim: 'evbridge' },
  },
  replay: { maxEvents: 100_000, maxBytes: 16 << 20 },
  native: { bridgeLibrary: '' },
  role: 'ingest',
  nats: {
    servers: [],
    stream: 'EVBRIDGE',
    subject: 'evbridge.events',
    replicas: 1,
    maxBytes: 256 << 20,
    maxAgeSeconds: 0,
    messageMaxEvents: 1024,
    messageMaxBytes: 256 * 1024,
    maxPendingBytes: 32 << 20,
    maxInflightMessages: 1024,
    ackTimeoutMs: 5000,
  },
  faultInjection: false,
  shutdownTimeoutMs: 5000,
  log: { level: 'info' },
};

/** A configuration key, its flag and environment names, its type, meaning and default. */
export interface KeySpec {
  path: string[];
  flag: string;
  env: string;
  kind: 'number' | 'boolean' | 'string' | 'list' | 'json';
  description: string;
  default: unknown;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

/** The schema of a key, for its description. */
function schemaAt(path: string[]): z.ZodType | undefined {
  let s: z.ZodType | undefined = ConfigSchema;
  for (const k of path) s = (s as { shape?: Record<string, z.ZodType> } | undefined)?.shape?.[k];
  return s;
}

function leaves(obj: object, prefix: string[] = []): KeySpec[] {
  return Object.entries(obj).flatMap(([k, v]): KeySpec[] => {
    const path = [...prefix, k];
    const isJson = path.join('.') === 'engine.config';
    if (!isJson && v !== null && typeof v === 'object' && !Array.isArray(v)) return leaves(v, path);
    const kind = isJson ? 'json' : Array.isArray(v) ? 'list' : typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'string';
    const description = schemaAt(path)?.description ?? '';
    return [{ path, flag: path.map(kebab).join('-'), env: `EVBRIDGE_${path.map(snake).join('_')}`, kind, description, default: v }];
  });
}

/** Every leaf key of the configuration. */
export const KEYS: readonly KeySpec[] = leaves(DEFAULTS);

/** A bad configuration: `message` names the key, the value's origin and what was expected. */
export const ConfigError = (message: string): EvbError => Errors.EVB_ERR_CONFIG(message);

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
    case 'json':
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        return raw; // validation then names the key
      }
    default:
      return raw;
  }
}

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => v !== null && typeof v === 'object' && !Array.isArray(v);

function setPath(tree: Tree, path: string[], value: unknown) {
  let node = tree;
  for (const k of path.slice(0, -1)) {
    const next = node[k];
    node[k] = isTree(next) ? { ...next } : {};
    node = node[k] as Tree;
  }
  node[path[path.length - 1] as string] = value;
}

function merge(base: unknown, over: unknown): unknown {
  if (isTree(base) && isTree(over)) {
    const out: Tree = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = merge(out[k], v);
    return out;
  }
  return over === undefined ? base : over;
}

/** Dotted paths of every leaf of a parsed object (arrays and engine.config's contents are leaves). */
function leafPaths(v: unknown, prefix: string): string[] {
  if (!isTree(v) || prefix === 'engine.config') return [prefix];
  return Object.entries(v).flatMap(([k, c]) => leafPaths(c, prefix ? `${prefix}.${k}` : k));
}

export interface ConfigSources {
  /** Path of a JSON file, if any. */
  file?: string;
  /** Process environment. */
  env?: NodeJS.ProcessEnv;
  /** Flag values by flag name (without `--`), as strings. */
  flags?: Record<string, string | undefined>;
  /** `--engine-set KEY=VALUE` arguments, in order. */
  engineSets?: readonly string[];
}

/**
 * Builds the configuration from its sources.
 * @throws EvbError EVB_ERR_CONFIG naming the first bad key and where its value came from.
 */
export function loadConfig(src: ConfigSources = {}): Config {
  const origin = new Map<string, string>();
  let tree: unknown = DEFAULTS;
  if (src.file) {
    let text: string;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (err) {
      throw ConfigError(`Cannot read config file ${src.file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw ConfigError(`Config file ${src.file} is not valid JSON: ${(err as Error).message}`);
    }
    if (!isTree(parsed)) throw ConfigError(`Config file ${src.file} must hold a JSON object`);
    // engine.config from the file replaces the default block as a whole.
    tree = merge(tree, parsed);
    for (const p of leafPaths(parsed, '')) origin.set(p, `config file ${src.file}`);
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
  for (const set of src.engineSets ?? []) {
    const eq = set.indexOf('=');
    const key = eq > 0 ? set.slice(0, eq) : '';
    if (!/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(key)) {
      throw ConfigError(`Invalid flag --engine-set "${set}": expected KEY=VALUE with a dotted KEY, such as udp.port=5141.`);
    }
    const raw = set.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    const t = tree as Tree;
    const engine = isTree(t.engine) ? { ...t.engine } : {};
    const block: Tree = isTree(engine.config) ? { ...engine.config } : {};
    setPath(block, key.split('.'), value);
    tree = { ...t, engine: { ...engine, config: block } };
    origin.set('engine.config', 'flag --engine-set');
  }
  const result = ConfigSchema.safeParse(tree);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw ConfigError('Invalid configuration');
  if (issue.code === 'unrecognized_keys') {
    const key = [...issue.path, issue.keys[0]].join('.');
    throw ConfigError(`Unknown config key "${key}"${src.file ? ` in config file ${src.file}` : ''}.`);
  }
  const key = issue.path.join('.');
  const from = origin.get(key) ?? 'the defaults';
  throw ConfigError(`Invalid config key "${key}" (from ${from}): ${issue.message}.`);
}

/** The README's configuration table, from the schema (test/config.test.ts
 * checks that README.md holds exactly this). */
export function configTable(): string {
  const rows = KEYS.map(
    (k) =>
      `| \`${k.path.join('.')}\` | \`--${k.flag}\` | \`${k.env}\` | \`${JSON.stringify(k.default)}\` | ${k.description.replace(/\|/g, '\\|')} |`,
  );
  return ['| key | flag | environment | default | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
