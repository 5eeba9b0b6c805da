// The real components the integration and end-to-end tests run against: the sandbox that
// `scripts/sandbox up` starts (CI starts it in .ci/run). Tests fail, not skip, without it.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export interface SandboxNode {
  name: string;
  dockerSocket: string;
  berthdAdminSocket: string;
  berthdUserSocket: string;
  berthdConfig: string;
  /** 127.0.0.1:PORT where dockerd listens with --tlsverify for job users */
  dockerTlsAddress: string;
  authzSocket: string;
  running: { dockerd: boolean; berthd: boolean; slurmd: boolean };
  logs: Record<string, string>;
}

export interface SandboxStatus {
  nodes: SandboxNode[];
  registry: { address: string; running: boolean; log: string };
  /** a pull-through mirror of the registry (proxy mode) */
  mirror: { address: string; running: boolean; log: string };
  demoImage: string;
  users: string[];
}

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

let cached: SandboxStatus | undefined;

export function sandbox(): SandboxStatus {
  if (cached) return cached;
  let out: string;
  try {
    out = execFileSync(path.join(REPO, 'scripts/sandbox'), ['status', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    out = (err as { stdout?: string }).stdout ?? '';
  }
  let status: SandboxStatus;
  try {
    status = JSON.parse(out) as SandboxStatus;
  } catch {
    throw new Error(`these tests need the sandbox (real dockerd, registry, Slurm): run 'scripts/sandbox up' first; status said: ${out.slice(0, 300)}`);
  }
  const down = [
    ...status.nodes.flatMap((n) => Object.entries(n.running).filter(([, up]) => !up).map(([what]) => `${what} on ${n.name}`)),
    ...(status.registry.running ? [] : ['registry']),
    ...(status.mirror?.running ? [] : ['mirror registry']),
  ];
  if (down.length) throw new Error(`sandbox is not fully up (${down.join(', ')}): run 'scripts/sandbox up'`);
  cached = status;
  return status;
}

export function node(name: string): SandboxNode {
  const n = sandbox().nodes.find((x) => x.name === name);
  if (!n) throw new Error(`sandbox has no node ${name}`);
  return n;
}

export function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}
