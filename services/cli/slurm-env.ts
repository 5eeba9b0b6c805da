// What the hooks and steps read from Slurm's environment. Kept free of heavy imports: slurmd
// runs the hooks for every job on every node, and jobs without a container must return at once.
import { readdirSync, readFileSync } from 'node:fs';
import { agentTasksDir, DEFAULT_RUN_DIR } from '../shared/paths';
import { isJobId } from '../shared/ids';
import { OPTION_ENV } from '../shared/container-options';
import { slurmOptionVar } from '../shared/spank-options';
export type Env = Record<string, string | undefined>;

/** The image the job asked for with --container-image (SPANK plugin), or ''. */
export function containerImage(env: Env): string {
  return (env[`SPANK_${OPTION_ENV.image}`] ?? env[slurmOptionVar('container-image')] ?? '').trim();
}

/** berthd left task files for this job's container steps on this node (RUN_DIR/NODE/tasks/JOB.*) */
export function hasStepFiles(env: Env): boolean {
  const job = env.SLURM_JOB_ID ?? '';
  const node = env.SLURMD_NODENAME ?? '';
  if (!isJobId(job) || !node) return false;
  try {
    return readdirSync(agentTasksDir(env.BERTH_RUN_DIR || DEFAULT_RUN_DIR, node)).some((f) => f.startsWith(`${job}.`));
  } catch {
    return false;
  }
}

export function nodeName(env: Env, fallback: string): string {
  return env.SLURMD_NODENAME || fallback;
}

/** "2(x3),1" → counts per node in node-list order. */
export function expandCounts(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = part.trim().match(/^(\d+)(?:\(x(\d+)\))?$/);
    if (!m) continue;
    for (let i = 0; i < Number(m[2] ?? 1); i++) out.push(Number(m[1]));
  }
  return out;
}

/**
 * The Slurm step this process is in, by its freezer cgroup (cgroup v1, proctrack/cgroup):
 * `.../job_<JOB>/step_<NAME>` in /proc/self/cgroup gives NAME (batch, extern, interactive, a
 * number), or '' when it is in none of job JOB's steps. berthd checks the name again and builds
 * the path itself. A batch script has no SLURM_STEP_ID, so this is how its step is known.
 */
export function ownSlurmStep(jobId: string, cgroupText?: string): string {
  const m = /\/job_([0-9]+)\/step_([a-z0-9]+)$/.exec(cgroupOf('freezer', cgroupText) ?? '');
  return m && m[1] === jobId ? m[2]! : '';
}

/**
 * The Slurm task this process is in, by its memory cgroup (cgroup v1, task/cgroup):
 * `.../job_<JOB>/step_<STEP>/task_<N>` gives N when STEP is its own step (ownSlurmStep), else ''.
 */
export function ownSlurmTask(jobId: string, step: string, cgroupText?: string): string {
  const m = /\/job_([0-9]+)\/step_([a-z0-9]+)\/task_([0-9]+)$/.exec(cgroupOf('memory', cgroupText) ?? '');
  return m && step !== '' && m[1] === jobId && m[2] === step ? m[3]! : '';
}

/** The path of CONTROLLER's line in /proc/self/cgroup (or in TEXT), or undefined. */
function cgroupOf(controller: string, cgroupText?: string): string | undefined {
  let text = cgroupText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/cgroup', 'utf8');
    } catch {
      return undefined;
    }
  }
  for (const line of text.split('\n')) {
    // ID:CONTROLLERS:PATH
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0 || !line.slice(a + 1, b).split(',').includes(controller)) continue;
    return line.slice(b + 1);
  }
  return undefined;
}
