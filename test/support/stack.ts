// The real components the integration and end-to-end tests run against: the sandbox that
// `scripts/sandbox up` starts (CI starts it in .ci/run). Tests fail, not skip, without it.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface SandboxNode {
  name: string;
  dockerSocket: string;
  berthdAdminSocket: string;
  berthdUserSocket: string;
  berthdConfig: string;
  /** 127.0.0.1:PORT where dockerd listens with --tlsverify for job users */
  dockerTlsAddress: string;
  /** 127.0.0.1:PORT where the node's berthd serves Prometheus metrics (GET /metrics) */
  metricsAddress: string;
  authzSocket: string;
  running: { dockerd: boolean; berthd: boolean; slurmd: boolean };
  logs: Record<string, string>;
}

export interface SandboxStatus {
  nodes: SandboxNode[];
  /** `address` serves anonymous pulls only; pushes go to `pushAddress` with the login in `pushLogins` (site only) */
  registry: { address: string; pushAddress: string; running: boolean; log: string; frontLog: string; pushLogins: string };
  /** a pull-through mirror of the registry (proxy mode) */
  mirror: { address: string; running: boolean; log: string };
  /** the coalescing mirror tier (nginx proxy_cache in front of `upstream`, the registry); `cache` is its cache directory */
  mirrorTier: { address: string; upstream: string; running: boolean; log: string; cache: string };
  /** a registry with htpasswd logins (alice, bob, site), holding `image` */
  privateRegistry: { address: string; running: boolean; log: string; image: string; logins: string };
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
    ...(status.mirrorTier?.running ? [] : ['mirror tier']),
    ...(status.privateRegistry?.running ? [] : ['private registry']),
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

/** the private registry's sandbox password for a login (alice, bob or site) */
export function privateLogin(user: string): string {
  const logins = JSON.parse(readFileSync(sandbox().privateRegistry.logins, 'utf8')) as Record<string, string>;
  const pw = logins[user];
  if (!pw) throw new Error(`the sandbox's private registry has no login ${user}`);
  return pw;
}

/** the password of the registry's push login `site` (users have none) */
export function registryPushLogin(): string {
  const pw = (JSON.parse(readFileSync(sandbox().registry.pushLogins, 'utf8')) as Record<string, string>).site;
  if (!pw) throw new Error(`${sandbox().registry.pushLogins} has no login 'site': rerun 'scripts/sandbox up'`);
  return pw;
}

/** writes a docker config.json with a login for the private registry, owned by uid, mode 0600 */
export function writeDockerLogin(file: string, user: string, uid: number, password = privateLogin(user)): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  chownSync(path.dirname(file), uid, uid);
  const auth = Buffer.from(`${user}:${password}`).toString('base64');
  writeFileSync(file, JSON.stringify({ auths: { [sandbox().privateRegistry.address]: { auth } } }), { mode: 0o600 });
  chmodSync(file, 0o600);
  chownSync(file, uid, uid);
}
