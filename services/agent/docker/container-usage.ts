// CPU and memory a container used, read while it still exists (the epilogue reads it before
// stopping the container; steps read it at start and end). The container's cgroup is found
// from its init process (/proc/PID/cgroup):
//   cgroup v2 (unified, /sys/fs/cgroup/cgroup.controllers exists): cpu.stat usage_usec,
//     memory.peak when the kernel has it (5.19+), else memory.current;
//   cgroup v1: cpuacct.usage (ns), memory.max_usage_in_bytes, else memory.usage_in_bytes.
// When the files cannot be read (berthd in another cgroup namespace, a foreign layout), the
// caller falls back to dockerd's stats (dockerode-engine.ts, containerUsage).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** CPU and memory of a container, read from its cgroup (or dockerd's stats) while it still exists. */
export interface ContainerUsage {
  cpuNanos: number;
  memoryPeakBytes: number;
  source: 'cgroup-v2' | 'cgroup-v1' | 'docker-stats';
}

export interface CgroupRoots {
  proc: string;
  cgroup: string;
}

export const HOST_ROOTS: CgroupRoots = { proc: '/proc', cgroup: '/sys/fs/cgroup' };

function readNumber(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function readCpuStatUsec(file: string): number | undefined {
  try {
    const m = readFileSync(file, 'utf8').match(/^usage_usec (\d+)$/m);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** cgroup paths of a process by controller ("" for the v2 unified line), from /proc/PID/cgroup. */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.match(/^\d+:([^:]*):(.*)$/);
    if (!m) continue;
    const [, controllers = '', p = ''] = m;
    if (controllers === '') out.set('', p);
    for (const c of controllers.split(',').filter(Boolean)) out.set(c.replace(/^name=/, ''), p);
  }
  return out;
}

/** The first of a v1 controller's usual mount points holding the cgroup directory. */
function v1Dir(roots: CgroupRoots, controller: string, rel: string, file: string): string | undefined {
  const mounts = controller === 'cpuacct' ? ['cpuacct', 'cpu,cpuacct', 'cpuacct,cpu'] : [controller];
  for (const m of mounts) {
    const dir = path.join(roots.cgroup, m, rel);
    if (existsSync(path.join(dir, file))) return dir;
  }
  return undefined;
}

/** The usage of the cgroup process PID is in; undefined when its files cannot be read. */
export function readCgroupUsage(pid: number, roots: CgroupRoots = HOST_ROOTS): ContainerUsage | undefined {
  if (!(pid > 0)) return undefined;
  let text: string;
  try {
    text = readFileSync(path.join(roots.proc, String(pid), 'cgroup'), 'utf8');
  } catch {
    return undefined;
  }
  const groups = parseProcCgroup(text);
  if (existsSync(path.join(roots.cgroup, 'cgroup.controllers'))) {
    const rel = groups.get('');
    if (rel === undefined) return undefined;
    const dir = path.join(roots.cgroup, rel);
    const usec = readCpuStatUsec(path.join(dir, 'cpu.stat'));
    const mem = readNumber(path.join(dir, 'memory.peak')) ?? readNumber(path.join(dir, 'memory.current'));
    if (usec === undefined || mem === undefined) return undefined;
    return { cpuNanos: usec * 1000, memoryPeakBytes: mem, source: 'cgroup-v2' };
  }
  const cpuRel = groups.get('cpuacct');
  const memRel = groups.get('memory');
  if (cpuRel === undefined || memRel === undefined) return undefined;
  const cpuDir = v1Dir(roots, 'cpuacct', cpuRel, 'cpuacct.usage');
  const memDir = v1Dir(roots, 'memory', memRel, 'memory.usage_in_bytes');
  if (!cpuDir || !memDir) return undefined;
  return readV1Usage({ cpuacct: cpuDir, memory: memDir });
}

/** The usage of a cgroup v1 pair of directories (a Slurm task's cpuacct and memory cgroups); undefined when unreadable. */
export function readV1Usage(dirs: { cpuacct: string; memory: string }): ContainerUsage | undefined {
  const ns = readNumber(path.join(dirs.cpuacct, 'cpuacct.usage'));
  const mem = readNumber(path.join(dirs.memory, 'memory.max_usage_in_bytes')) ?? readNumber(path.join(dirs.memory, 'memory.usage_in_bytes'));
  if (ns === undefined || mem === undefined) return undefined;
  return { cpuNanos: ns, memoryPeakBytes: mem, source: 'cgroup-v1' };
}

/** dockerd's one-shot stats (GET /containers/ID/stats?stream=false) as a usage; undefined when empty. */
export function usageFromDockerStats(stats: { cpu_stats?: { cpu_usage?: { total_usage?: number } }; memory_stats?: { max_usage?: number; usage?: number } }): ContainerUsage | undefined {
  const cpu = stats.cpu_stats?.cpu_usage?.total_usage;
  const mem = stats.memory_stats?.max_usage || stats.memory_stats?.usage;
  if (typeof cpu !== 'number' || typeof mem !== 'number') return undefined;
  return { cpuNanos: cpu, memoryPeakBytes: mem, source: 'docker-stats' };
}
