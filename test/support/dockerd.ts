// The sandbox's own dockerd processes, stopped and started again for the fault drills as an
// admin's `systemctl restart docker` would: SIGTERM, wait until it is gone, then the same
// command line again, started as scripts/sandbox.d/docker.sh's start_bg does (its own session,
// in /, output appended to the node's dockerd.log). dockerd writes its pid file itself.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { alive, sleep, until } from './berthd';
import { node } from './stack';

export const dockerPidFile = (n: string): string => `/run/berth-sandbox/${n}/docker.pid`;

/** the pid of node n's dockerd (its pid file, checked against its command line), or undefined */
export function dockerdPid(n: string): number | undefined {
  if (!existsSync(dockerPidFile(n))) return undefined;
  const pid = Number(readFileSync(dockerPidFile(n), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  return cmd.includes(`unix://${node(n).dockerSocket}`) ? pid : undefined;
}

/** whether node n's dockerd answers /_ping */
export async function dockerPing(n: string): Promise<boolean> {
  const { request } = await import('node:http');
  return new Promise((resolve) => {
    const req = request({ socketPath: node(n).dockerSocket, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export interface DockerdRestart {
  /** when SIGTERM was sent, when the old dockerd was gone, when the new one answered /_ping (ms) */
  signalledAt: number;
  goneAt: number;
  pingAt: number;
}

const lastArgv = new Map<string, string[]>();

/** the argv of node n's running dockerd (remembered, so that a drill can start it again) */
export function dockerdArgv(n: string): string[] {
  const pid = dockerdPid(n);
  if (pid === undefined) {
    const known = lastArgv.get(n);
    if (!known) throw new Error(`sandbox dockerd ${n} is not running and was not seen running: run 'scripts/sandbox up'`);
    return known;
  }
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
  lastArgv.set(n, argv);
  return argv;
}

/** SIGTERM to node n's dockerd; resolves when it is gone (dockerd with live-restore leaves the containers running) */
export async function stopDockerd(n: string, timeoutMs = 40_000): Promise<{ signalledAt: number; goneAt: number }> {
  dockerdArgv(n);
  const pid = dockerdPid(n);
  if (pid === undefined) throw new Error(`sandbox dockerd ${n} is not running`);
  const signalledAt = Date.now();
  process.kill(pid, 'SIGTERM');
  await until(`dockerd ${n} (pid ${pid}) gone after SIGTERM`, () => !alive(pid), timeoutMs, 20);
  return { signalledAt, goneAt: Date.now() };
}

/** starts node n's dockerd again with the command line it last ran with (or argv); resolves when it answers /_ping */
export async function startDockerd(n: string, timeoutMs = 60_000, argv = dockerdArgv(n)): Promise<number> {
  const log = node(n).logs.dockerd ?? `/var/log/berth-sandbox/${n}/dockerd.log`;
  const out = openSync(log, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { cwd: '/', stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  child.unref();
  for (const end = Date.now() + timeoutMs; ;) {
    if (await dockerPing(n)) return Date.now();
    if (Date.now() > end) throw new Error(`dockerd ${n} did not answer /_ping within ${timeoutMs / 1000} s after its start (log: ${log})`);
    await sleep(50);
  }
}

/** SIGTERM, gone, started again, answering */
export async function restartDockerd(n: string): Promise<DockerdRestart> {
  const { signalledAt, goneAt } = await stopDockerd(n);
  const pingAt = await startDockerd(n);
  return { signalledAt, goneAt, pingAt };
}

/** after a drill: node n's dockerd running (started again if a drill left it stopped) */
export async function ensureDockerd(nodes: string[]): Promise<void> {
  for (const n of nodes) if (dockerdPid(n) === undefined && !(await dockerPing(n))) await startDockerd(n);
}
