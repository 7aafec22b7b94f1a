// Real nats-server processes (Debian's nats-server, JetStream on) on free
// loopback ports: one node, or a three-node cluster. Each wait has a bound.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { track, within } from './daemon.js';

export const NATS_SERVER = '/usr/sbin/nats-server';

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface NatsNode {
  name: string;
  port: number;
  url: string;
  proc: ChildProcess | undefined;
  /** SIGKILL; resolves when it exited. */
  kill(): Promise<void>;
  /** Starts it again with the same ports and store. */
  start(): Promise<void>;
}

async function healthy(monitor: number, cluster: boolean, ms: number) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${monitor}/healthz${cluster ? '' : '?js-enabled-only=true'}`);
      if (r.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`nats-server on monitor port ${monitor} not healthy in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts `n` (1 or 3) JetStream nodes; a cluster when n > 1. */
export async function startNats(n: 1 | 3): Promise<NatsNode[]> {
  const ports = await Promise.all(Array.from({ length: n }, async () => ({ client: await freePort(), cluster: await freePort(), monitor: await freePort() })));
  const nodes: NatsNode[] = ports.map((p, i) => {
    const dir = mkdtempSync(join(tmpdir(), `evb-nats-${i}-`));
    const args = ['-a', '127.0.0.1', '-p', String(p.client), '-m', String(p.monitor), '-js', '-sd', dir, '-n', `n${i}`];
    if (n > 1) {
      args.push('--cluster_name', 'evb', '--cluster', `nats://127.0.0.1:${p.cluster}`, '--routes', ports.filter((_, k) => k !== i).map((q) => `nats://127.0.0.1:${q.cluster}`).join(','));
    }
    const node: NatsNode = {
      name: `n${i}`,
      port: p.client,
      url: `127.0.0.1:${p.client}`,
      proc: undefined,
      kill: async () => {
        const proc = node.proc;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
        const gone = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGKILL');
        await within(gone, 5000, `${node.name} to exit`);
      },
      start: async () => {
        node.proc = track(spawn(NATS_SERVER, args, { stdio: 'ignore' }));
        await healthy(p.monitor, n > 1, 30000);
      },
    };
    return node;
  });
  await Promise.all(nodes.map((x) => x.start()));
  return nodes;
}

export async function stopNats(nodes: NatsNode[]) {
  await Promise.all(nodes.map((x) => x.kill()));
}
