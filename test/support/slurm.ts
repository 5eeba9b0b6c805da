// Running Slurm commands as the sandbox's ordinary users, and reading what the nodes left.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync, chownSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { node, sandbox, uidOf } from './stack';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { user?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Run {
  const full = opts.user ? ['runuser', ['-u', opts.user, '--', 'env', ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`), cmd, ...args]] as const : [cmd, args] as const;
  const r = spawnSync(full[0], [...full[1]], { cwd: opts.cwd, encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, env: opts.user ? undefined : { ...process.env, ...opts.env } });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** A fresh directory in the user's home for one test's job files. */
export function jobDir(user: string, name: string): string {
  const dir = path.join('/home', user, 'berth-tests', `${name}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const uid = uidOf(user);
  chownSync(path.dirname(dir), uid, uid);
  chownSync(dir, uid, uid);
  return dir;
}

export function writeScript(dir: string, name: string, body: string, user: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  chownSync(file, uidOf(user), uidOf(user));
  return file;
}

/** a job's output so far; '' before Slurm made the file (which the job's user must own, so never create it here) */
export function readIfExists(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

export function jobIdFrom(sbatchOut: string): string {
  const m = sbatchOut.match(/Submitted batch job (\d+)/);
  if (!m) throw new Error(`no job id in sbatch output: ${sbatchOut}`);
  return m[1]!;
}

export function containersOfJob(nodeName: string, jobId: string, status?: string): string[] {
  const filters = ['--filter', `label=io.berth.job.id=${jobId}`, ...(status ? ['--filter', `status=${status}`] : [])];
  const r = run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, 'ps', '-a', '-q', ...filters]);
  if (r.code !== 0) throw new Error(`docker ps on ${nodeName} failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

/** The node's accounting records of the current format (docs/accounting.md), from its current log file. */
export function accountingRecords(nodeName: string): Record<string, unknown>[] {
  const cfg = JSON.parse(readFileSync(node(nodeName).berthdConfig, 'utf8')) as { accountingFile: string };
  if (!existsSync(cfg.accountingFile)) return [];
  return readFileSync(cfg.accountingFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => typeof r.Format === 'number');
}

export function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 60_000): T {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    spawnSync('sleep', ['0.3']);
  }
}

export function jobState(jobId: string): string {
  return run('squeue', ['-h', '-j', jobId, '-o', '%T']).stdout.trim();
}

export function jobNodes(jobId: string): string {
  return run('squeue', ['-h', '-j', jobId, '-o', '%N']).stdout.trim();
}

export function slurmdLog(nodeName: string): string {
  const file = node(nodeName).logs.slurmd;
  return file && existsSync(file) ? readFileSync(file, 'utf8') : '';
}

export function resumeNodes(): void {
  for (const n of sandbox().nodes) run('scontrol', ['update', `nodename=${n.name}`, 'state=resume']);
}

/**
 * A 1-CPU container job of the demo image sleeping on node `on`, once its job container runs:
 * for tests that look into a running job's containers. `extra`: more sbatch options (--gres=...).
 */
export function runningContainerJob(user: string, name: string, on: string, extra: string[] = []): { jobId: string; container: string; dir: string } {
  const dir = jobDir(user, name);
  const sub = run('sbatch', ['-N1', '-w', on, '-c1', ...extra, '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', '/dev/null', '--wrap', 'sleep 300'], { user, cwd: dir });
  if (sub.code !== 0) throw new Error(`sbatch as ${user} failed: ${sub.stderr}`);
  const jobId = jobIdFrom(sub.stdout);
  waitFor(`job ${jobId} running`, () => jobState(jobId) === 'RUNNING' || undefined);
  const container = waitFor(`container of job ${jobId}`, () => containersOfJob(on, jobId, 'running')[0]);
  return { jobId, container, dir };
}

/** the docker CLI as root on a node's own dockerd socket */
export function dockerOnNode(nodeName: string, args: string[]): Run {
  return run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, ...args]);
}
