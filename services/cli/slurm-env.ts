// What the hooks and steps read from Slurm's environment. Kept free of heavy imports: slurmd
// runs the hooks for every job on every node, and jobs without a container must return at once.
import { readdirSync } from 'node:fs';
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
