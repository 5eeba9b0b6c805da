// The Slurm cgroups of the step and task that ran `berth exec`, and moving the step's first
// process into them before its command runs (berth-init waits for that: BERTH_PLACEMENT_WAIT_MS).
// - freezer: the step's, FREEZER_ROOT/uid_<uid>/job_<job>/step_<step>. proctrack/cgroup tracks a
//   step by it, so Slurm's signals, its kill at the step's end, scancel and scontrol suspend
//   reach the step's processes.
// - memory and cpuacct: the task's, ROOT/uid_<uid>/job_<job>/step_<step>/task_<task>, the task
//   of the `berth exec` client. jobacct_gather/cgroup reads a task's figures from these two
//   (memory.stat total_rss, cpuacct.stat), so sacct counts the step's processes, and the job's
//   Slurm memory limit (task/cgroup, ConstrainRAMSpace) bounds them.
// cpu, cpuset, pids and devices stay the container's in berth's job cgroup: its CPU quota (where
// cpu is not mounted with cpuacct), the job's CPUs, its process limit and the container's own
// device list keep holding. FREEZER_ROOT and ROOT are <CgroupMountpoint>/<controller>/slurm
// (slurm_<node> when Slurm was built with --enable-multiple-slurmd, as the sandbox's three
// slurmd are). berthd never makes a directory there: a cgroup that is missing (berth exec from
// an ssh session outside any step, cgroup v2, another proctrack or jobacct_gather) is skipped,
// and with none the step runs as before, unplaced.
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

/** A configured Slurm cgroup root (slurmFreezerCgroup, slurmTaskCgroups) with the node's name for %n (and % for %%). */
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

/** Slurm's task names in its cgroup tree: task_<n> (the task's local id) */
const SLURM_TASK = /^[0-9]{1,10}$/;

/** ROOT/uid_<uid>/job_<job>/step_<step>/task_<task>, or why there is none. Pure, like slurmStepFreezerPath. */
export function slurmTaskCgroupPath(root: string, uid: number, jobId: string, stepId: string, task: string): { dir: string } | { reason: string } {
  const step = slurmStepFreezerPath(root, uid, jobId, stepId);
  if ('reason' in step) return step;
  if (!SLURM_TASK.test(task)) return { reason: task === '' ? 'the client is in no Slurm task cgroup' : `task '${task.slice(0, 40)}' is not a task Slurm names` };
  return { dir: path.join(step.dir, `task_${task}`) };
}

/** The Slurm cgroups a step's first process joins; usage: the task's memory and cpuacct, for berth's own accounting. */
export interface SlurmPlacement {
  dirs: string[];
  task: { memory?: string; cpuacct?: string };
}

export interface SlurmStepCgroupsOptions {
  /** FREEZER_ROOT with the node's name in it already; undefined: not placed in the step's freezer */
  freezerRoot: string | undefined;
  /** the roots of Slurm's task cgroups, the node's name in them already; absent: not placed in them */
  taskRoots?: { memory?: string | undefined; cpuacct?: string | undefined };
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
    return existing(slurmStepFreezerPath(this.opts.freezerRoot, job.uid, job.jobId, stepId), 'no Slurm step with proctrack/cgroup on cgroup v1', log);
  }

  /**
   * The memory and cpuacct cgroups of the caller's task (the task_<TASK> it found itself in),
   * each when Slurm made it; built like stepDir from the admitted job's own uid and id.
   */
  taskDirs(job: { jobId: string; uid: number }, stepId: string, task: string, log: Logger): { memory?: string; cpuacct?: string } {
    const out: { memory?: string; cpuacct?: string } = {};
    for (const c of ['memory', 'cpuacct'] as const) {
      const root = this.opts.taskRoots?.[c];
      if (!root) continue;
      const dir = existing(slurmTaskCgroupPath(root, job.uid, job.jobId, stepId, task), c === 'memory' ? 'no Slurm task with task/cgroup and ConstrainRAMSpace on cgroup v1' : 'no Slurm task with jobacct_gather/cgroup on cgroup v1', log);
      if (dir) out[c] = dir;
    }
    return out;
  }

  /** Every Slurm cgroup of the caller's step and task there is to join; undefined when none is. */
  placement(job: { jobId: string; uid: number }, stepId: string, task: string, log: Logger): SlurmPlacement | undefined {
    const freezer = this.stepDir(job, stepId, log);
    const t = this.taskDirs(job, stepId, task, log);
    const dirs = [freezer, t.memory, t.cpuacct].filter((d): d is string => d !== undefined);
    return dirs.length > 0 ? { dirs, task: t } : undefined;
  }

  /**
   * Moves PID (berth-init, waiting) into DIR (each of DIRS), then lets it go on. Never throws
   * and never leaves it waiting: SIGCONT goes whenever berth-init was seen waiting, placed or
   * not. True when it joined every one; `onPlaced` hears of each it joined.
   */
  async place(pid: number, dirs: string | readonly string[], log: Logger, onPlaced?: (dir: string) => void): Promise<boolean> {
    const state = await this.waitBlocked(pid);
    if (state === 'gone') return false; // ended already: its pid may be another process's soon
    const waiting = state === 'waiting';
    let placed = true;
    for (const dir of typeof dirs === 'string' ? [dirs] : dirs) {
      try {
        writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
        onPlaced?.(dir);
      } catch (err) {
        placed = false;
        log.info('could not place the step in one of its Slurm cgroups; it runs outside that one', { pid, dir, error: (err as Error).message });
      }
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
    if (placed) log.debug('step placed in its Slurm cgroups', { pid, dirs });
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

/** P's directory when it is one (not a link) that is already there; else undefined, logged at debug with why. */
function existing(p: { dir: string } | { reason: string }, missing: string, log: Logger): string | undefined {
  if ('reason' in p) {
    log.debug('step not placed in a Slurm cgroup', { reason: p.reason });
    return undefined;
  }
  try {
    if (lstatSync(p.dir).isDirectory()) return p.dir;
  } catch {
    // missing: the reason below
  }
  log.debug('step not placed in a Slurm cgroup', { reason: `${p.dir} is not there (${missing})` });
  return undefined;
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
