// The freezer cgroup of the Slurm step that ran `berth exec`, and moving the step's first
// process into it before its command runs (berth-init waits for that: BERTH_PLACEMENT_WAIT_MS).
// Only freezer: it is the cgroup proctrack/cgroup tracks a step by, so Slurm's signals, its
// kill at the step's end, scancel and scontrol suspend reach the step's processes; memory,
// cpu, cpuset and pids stay in berth's job cgroup, whose limits bound all of the job's
// containers. (jobacct_gather/linux still does not count them: it sums a task's descendants
// only, and a docker exec's process is containerd-shim's child; docs/operations.md.)
// cgroup v1 layout, as slurmd makes it: FREEZER_ROOT/uid_<uid>/job_<job>/step_<step>, where
// FREEZER_ROOT is <CgroupMountpoint>/freezer/slurm (slurm_<node> when Slurm was built with
// --enable-multiple-slurmd, as the sandbox's three slurmd are). berthd never makes a directory
// there: a step whose cgroup is missing (berth exec from an ssh session outside any step,
// cgroup v2, another proctrack) runs as before, unplaced.
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isJobId } from '../../shared/ids';
import type { Logger } from '../logger';

export const PLACEMENT_WAIT_ENV = 'BERTH_PLACEMENT_WAIT_MS';
/** how long berth-init waits for berthd's SIGCONT before its command runs anyway */
export const PLACEMENT_WAIT_MS = 5_000;
/** how long berthd looks for berth-init's blocked SIGCONT (it blocks it within microseconds of starting) */
const BLOCKED_WAIT_MS = 1_000;
/** SIGCONT is signal 18: bit 17 of SigBlk */
const SIGCONT_BIT = 1n << 17n;

/** The config's slurmFreezerCgroup with the node's name for %n (and % for %%). */
export function freezerRootFor(template: string, node: string): string {
  return template.replace(/%(%|n)/g, (_m, c: string) => (c === 'n' ? node : '%'));
}

/** Slurm's step names in its cgroup tree: step_<n>, step_batch, step_extern, step_interactive */
const SLURM_STEP = /^(?:[0-9]{1,10}|batch|extern|interactive)$/;

/** The step's name in Slurm's cgroup tree for SLURM_STEP_ID as the client sent it, or undefined. */
export function slurmStepName(stepId: string): string | undefined {
  return SLURM_STEP.test(stepId) ? stepId : undefined;
}

/** FREEZER_ROOT/uid_<uid>/job_<job>/step_<step>, or why there is none. Pure: looks at nothing on disk. */
export function slurmStepFreezerPath(freezerRoot: string, uid: number, jobId: string, stepId: string): { dir: string } | { reason: string } {
  const step = slurmStepName(stepId);
  if (step === undefined) return { reason: stepId === '' ? 'the client is in no Slurm step (SLURM_STEP_ID is not set)' : `SLURM_STEP_ID '${stepId.slice(0, 40)}' is not a step Slurm names` };
  if (!Number.isSafeInteger(uid) || uid <= 0) return { reason: `uid ${uid} is not a job user's` };
  if (!isJobId(jobId)) return { reason: `job id '${jobId}' is not a job id` };
  return { dir: path.join(freezerRoot, `uid_${uid}`, `job_${jobId}`, `step_${step}`) };
}

export interface SlurmStepCgroupsOptions {
  /** FREEZER_ROOT with the node's name in it already; undefined: no placement at all */
  freezerRoot: string | undefined;
  /** where /proc is (tests give a directory of their own) */
  proc?: string;
  signal: (pid: number, signal: NodeJS.Signals) => void;
  log: Logger;
}

export class SlurmStepCgroups {
  private readonly proc: string;

  constructor(private readonly opts: SlurmStepCgroupsOptions) {
    this.proc = opts.proc ?? '/proc';
  }

  /**
   * The freezer cgroup of the caller's step, when Slurm made one: a directory (not a link)
   * that is already there. Only the admitted job's own uid and id go into the path.
   */
  stepDir(job: { jobId: string; uid: number }, stepId: string, log: Logger): string | undefined {
    if (!this.opts.freezerRoot) return undefined;
    const p = slurmStepFreezerPath(this.opts.freezerRoot, job.uid, job.jobId, stepId);
    if ('reason' in p) {
      log.debug('step not placed in a Slurm step cgroup', { reason: p.reason });
      return undefined;
    }
    try {
      if (lstatSync(p.dir).isDirectory()) return p.dir;
    } catch {
      // missing: the reason below
    }
    log.debug('step not placed in a Slurm step cgroup', { reason: `${p.dir} is not there (no Slurm step with proctrack/cgroup on cgroup v1)` });
    return undefined;
  }

  /**
   * Moves PID (berth-init, waiting) into DIR, then lets it go on. Never throws and never
   * leaves it waiting: SIGCONT goes whenever berth-init was seen waiting, placed or not.
   */
  async place(pid: number, dir: string, log: Logger): Promise<boolean> {
    const state = await this.waitBlocked(pid);
    if (state === 'gone') return false; // ended already: its pid may be another process's soon
    const waiting = state === 'waiting';
    let placed = false;
    try {
      writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
      placed = true;
    } catch (err) {
      log.info('could not place the step in its Slurm step cgroup; it runs unplaced', { pid, dir, error: (err as Error).message });
    }
    if (waiting) {
      try {
        this.opts.signal(pid, 'SIGCONT');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') log.warn('could not continue the step after placing it', { pid, error: String(err) });
      }
    } else {
      log.info('berth-init was not seen waiting to be placed (an older one, or it waited too long)', { pid, placed });
    }
    if (placed) log.debug('step placed in its Slurm step cgroup', { pid, dir });
    return placed;
  }

  /** 'waiting' once PID has SIGCONT blocked (berth-init waits on it); 'running' if it never does */
  private async waitBlocked(pid: number): Promise<'waiting' | 'running' | 'gone'> {
    const until = Date.now() + BLOCKED_WAIT_MS;
    for (;;) {
      const blocked = sigBlk(path.join(this.proc, String(pid), 'status'));
      if (blocked === undefined) return 'gone';
      if ((blocked & SIGCONT_BIT) !== 0n) return 'waiting';
      if (Date.now() >= until) return 'running';
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

function sigBlk(statusFile: string): bigint | undefined {
  let text: string;
  try {
    text = readFileSync(statusFile, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^SigBlk:\s*([0-9a-fA-F]+)$/m.exec(text);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}
