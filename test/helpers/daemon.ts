// Starts the real daemon (dist/daemon/cli.js, built by `npm run build`) as a
// child process on ephemeral ports and reads its JSON log lines. Every wait
// here has a bound and fails with what it was waiting for.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

export const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'daemon', 'cli.js');

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface RunningDaemon {
  proc: ChildProcess;
  httpPort: number;
  /** The built-in engine's UDP port, when it has a UDP source. */
  udpPort: number;
  base: string;
  wsUrl: string;
  logs: LogLine[];
  stdout: () => string;
  stderr: () => string;
  /** Resolves when a log line matching `pred` appears. */
  waitLog: (pred: (l: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>;
  /** Sends a signal and resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
  exited: Promise<number | null>;
}

/** `--engine-set` flags for keys of the engine's configuration block. */
export function engine(sets: Record<string, unknown>): string[] {
  return Object.entries(sets).flatMap(([k, v]) => ['--engine-set', `${k}=${JSON.stringify(v)}`]);
}

/** Flags that keep a test daemon quiet and on free ports. */
export const QUIET = ['--http-port', '0', ...engine({ 'udp.port': 0, 'tick.hz': 0 })];

/** Child processes still running. They are killed when this test process
 * exits, however it exits (a failed bound, tap's timeout), so that no daemon
 * or server outlives its test and loads the machine for the next one. */
const live = new Set<ChildProcess>();
/** Tracks a child process until it exits. */
export function track<T extends ChildProcess>(p: T): T {
  live.add(p);
  p.once('exit', () => live.delete(p));
  return p;
}
const killAll = () => {
  for (const p of live) p.kill('SIGKILL');
};
process.on('exit', killAll);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAll();
    process.kill(process.pid, sig); // then die of the signal as before
  });
}

/** Rejects after `ms` with `what`; clears its timer when `p` settles. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

export function startDaemon(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningDaemon> {
  const proc = track(spawn(process.execPath, [CLI, ...QUIET, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  const logs: LogLine[] = [];
  let out = '';
  let buf = '';
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        continue;
      }
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.pred(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const waitLog = (pred: (l: LogLine) => boolean, timeoutMs = 10000) =>
    new Promise<LogLine>((resolve, reject) => {
      const found = logs.find(pred);
      if (found) return resolve(found);
      const t = setTimeout(() => reject(new Error(`no matching log line in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  return Promise.race([
    waitLog((l) => l.msg === 'evbridge started', 20000),
    exited.then((code) => Promise.reject(new Error(`daemon exited with ${code} before starting: ${stderr}`))),
  ]).then((started) => {
    const httpPort = started.httpPort as number;
    const udp = ((started.sources ?? []) as { kind: string; detail: string }[]).find((s) => s.kind === 'udp');
    return {
      proc,
      httpPort,
      udpPort: udp ? Number(udp.detail.slice(udp.detail.lastIndexOf(':') + 1)) : 0,
      base: `http://127.0.0.1:${httpPort}`,
      wsUrl: `ws://127.0.0.1:${httpPort}/v1/stream`,
      logs,
      stdout: () => out,
      stderr: () => stderr,
      waitLog,
      stop: (signal: NodeJS.Signals = 'SIGTERM') => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
        return within(exited, 15000, 'the daemon to exit');
      },
      exited,
    };
  });
}

/** Runs the CLI to completion; for start-up failures. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return within(
    new Promise((resolve) => {
      const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      proc.on('exit', (code) => resolve({ code, stdout, stderr }));
    }),
    20000,
    `evbridge ${args.join(' ')} to exit`,
  );
}

/** Reads one metric sample's value from /metrics text. */
export async function metric(base: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const want = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(want));
  if (line === undefined) throw new Error(`metric ${want.trim()} not found`);
  return Number(line.slice(want.length));
}

/** Polls /metrics until `pred` holds for the value (counters have no push). */
export async function waitMetric(base: string, name: string, labels: string, pred: (v: number) => boolean, timeoutMs = 10000): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await metric(base, name, labels);
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`${name}{${labels}} = ${v} did not reach the expected value in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface WireEvent {
  seq: number;
  kind: string;
  source: number;
  source_seq: number;
  ts: string;
  time: number;
  payload: string;
  subject?: string;
}
export type ServerMsg = { type: string; [k: string]: unknown };

/** A WebSocket test client that records every message. */
export class TestClient {
  readonly msgs: ServerMsg[] = [];
  readonly events = new Map<string, WireEvent[]>();
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];
  closeCode: number | undefined;
  readonly closed: Promise<number>;
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve((this.closeCode = code))));
    ws.on('close', () => this.check());
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        this.msgs.push({ type: 'binary', bytes: data.length });
      } else {
        const m = JSON.parse(data.toString()) as ServerMsg;
        this.msgs.push(m);
        if (m.type === 'events') {
          const list = this.events.get(m.sub as string) ?? [];
          list.push(...(m.events as WireEvent[]));
          this.events.set(m.sub as string, list);
        }
      }
      this.check();
    });
  }

  private check() {
    this.waiters = this.waiters.filter((w) => (w.pred() ? (w.resolve(), false) : true));
  }

  static async connect(url: string, opts: ConstructorParameters<typeof WebSocket>[2] = {}, protocols: string[] = ['evbridge.v1.json']) {
    const c = new TestClient(new WebSocket(url, protocols, opts));
    await within(c.opened, 10000, `a connection to ${url}`);
    return c;
  }

  send(m: object) {
    this.ws.send(JSON.stringify(m));
  }

  /** Resolves when `pred` holds after some message (or the close), or rejects after timeoutMs. */
  until(pred: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
    if (pred()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => this.waiters.push({ pred, resolve })),
      timeoutMs,
      what,
    );
  }

  async subscribe(id: string, filter: { kinds?: string[]; sources?: number[]; subjects?: string[]; from_seq?: number; format?: 'objects' | 'rows' } = {}) {
    this.send({ type: 'subscribe', id, ...filter });
    await this.until(() => this.msgs.some((m) => m.type === 'subscribed' && m.id === id), 5000, `subscribed ${id}`);
  }

  got(sub: string): WireEvent[] {
    return this.events.get(sub) ?? [];
  }
}
