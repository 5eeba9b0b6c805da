// The steps of the node's jobs, as the job's record holds them: a step's start and end (berth
// exec steps from steps/step-runner.ts, native container steps from steps/step-containers.ts),
// the job container's CPU and memory over each step, and the job's checkpoint after each
// change. A step that was running when berthd stopped is cut (recorded as killed); its real end,
// if it comes, replaces that. The job's lifecycle (jobs/job-service.ts) waits here for the
// steps still being recorded before it accounts for the job.
import { errorMessage } from '../../shared/errors';
import { stepState } from '../accounting/accounting-record';
import { type ContainerUsage, readV1Usage } from '../docker/container-usage';
import { engineMessage } from '../docker/engine';
import type { Logger } from '../logger';
import type { JobMetrics } from '../metrics/agent-metrics';
import type { JobRecord, StepRecord } from './job-record';
import type { JobTable } from './job-table';

/** what recovery writes into a step that was running when berthd stopped */
export const STEP_CUT_BY_RESTART = 'unknown (berthd restarted)';

export type StepStart = Omit<StepRecord, 'state' | 'exitCode' | 'signal' | 'endTime'>;
export interface StepEnd {
  state: StepRecord['state'];
  exitCode: number;
  signal?: string;
  /** when the step ended, if not now (a spooled record's time) */
  at?: Date;
}

/**
 * The Slurm task cgroups (memory, cpuacct) a berth exec step's processes join: the step's
 * usage is charged there once `joined()` (steps/slurm-step-cgroup.ts).
 */
export interface SlurmTaskCgroups {
  dirs: { memory: string; cpuacct: string };
  joined(): boolean;
  /** reads DIRS (tests give their own); cgroup v1 files by default */
  read?: (dirs: { memory: string; cpuacct: string }) => ContainerUsage | undefined;
}

export interface StepLedgerDeps {
  table: Pick<JobTable, 'get' | 'checkpoint'>;
  log: Logger;
  /** CPU and memory of a container from its cgroup (docker stats otherwise) */
  usage?: { containerUsage(id: string): Promise<ContainerUsage | undefined> };
  metrics?: Pick<JobMetrics, 'stepStarted' | 'stepEnded'>;
  now?: () => Date;
}

/** steps that were running when berthd stopped: killed, as far as berthd knows (a native step's end may still come) */
export function cutByRestart(steps: readonly StepRecord[]): StepRecord[] {
  return steps.map((s) => (s.state === 'RUNNING' ? { ...s, state: 'KILLED', signal: s.signal || STEP_CUT_BY_RESTART, cutByRestart: true } : s));
}

export class StepLedger {
  private readonly now: () => Date;
  /** each running step's usage sample at its start, awaited by its end */
  private readonly startUsage = new WeakMap<StepRecord, Promise<ContainerUsage | undefined>>();
  /** a placed step's Slurm task cgroups and their usage at its start */
  private readonly taskStart = new WeakMap<StepRecord, { task: SlurmTaskCgroups; at: ContainerUsage | undefined }>();
  /** steps of a job whose end usage is being read, by job */
  private readonly measuring = new Map<string, Set<Promise<void>>>();
  /** native steps whose end has not come yet (JOB.STEP → record) */
  private readonly open = new Map<string, StepRecord>();

  constructor(private readonly d: StepLedgerDeps) {
    this.now = d.now ?? (() => new Date());
  }

  /**
   * Records the step as running on the job's record; undefined when berthd holds no such job.
   * TASK: the Slurm task cgroups the step is about to join (read now, before it has).
   */
  start(jobId: string, step: StepStart, task?: SlurmTaskCgroups): StepRecord | undefined {
    const job = this.d.table.get(jobId);
    if (!job) return undefined;
    const rec: StepRecord = { ...step, state: 'RUNNING', exitCode: 0, signal: '', endTime: '' };
    // a step prologue repeated through a restart of berthd: the record of the cut-off one goes
    job.steps = job.steps.filter((s) => !(s.cutByRestart && s.stepId === step.stepId && s.taskId === step.taskId));
    job.steps.push(rec);
    this.checkpoint(job);
    if (this.d.usage) this.startUsage.set(rec, this.sample(job.containerId, this.d.log.child({ job: jobId })));
    if (this.d.usage && task) this.taskStart.set(rec, { task, at: (task.read ?? readV1Usage)(task.dirs) });
    this.d.metrics?.stepStarted();
    return rec;
  }

  /** Records the step's end at once, then its usage (the container's CPU over the step, its memory peak so far). */
  async end(jobId: string, rec: StepRecord, end: StepEnd): Promise<void> {
    // at once: slurmstepd removes the task's cgroups as soon as the berth exec client, told the
    // step ended, exits
    const inTask = this.taskStart.get(rec);
    this.taskStart.delete(rec);
    const taskEnd = inTask?.at && inTask.task.joined() ? (inTask.task.read ?? readV1Usage)(inTask.task.dirs) : undefined;
    const slurmTask = inTask?.at && taskEnd ? { cpuNanos: Math.max(0, taskEnd.cpuNanos - inTask.at.cpuNanos), memoryPeakBytes: taskEnd.memoryPeakBytes } : undefined;
    rec.state = end.state;
    rec.exitCode = end.exitCode;
    rec.signal = end.signal ?? '';
    rec.endTime = (end.at ?? this.now()).toISOString();
    delete rec.cutByRestart;
    this.d.metrics?.stepEnded(stepState(rec));
    const job = this.d.table.get(jobId);
    if (job) this.checkpoint(job);
    const atStart = this.startUsage.get(rec);
    if (!atStart || !job) return;
    this.startUsage.delete(rec);
    const pending = this.measuring.get(jobId) ?? new Set<Promise<void>>();
    this.measuring.set(jobId, pending);
    const measured = (async () => {
      const [first, last] = await Promise.all([atStart, this.sample(job.containerId, this.d.log.child({ job: jobId }))]);
      if (!first || !last) return;
      const cpuNanos = Math.max(0, last.cpuNanos - first.cpuNanos);
      rec.usage = slurmTask
        ? { cpuNanos: cpuNanos + slurmTask.cpuNanos, memoryPeakBytes: Math.max(last.memoryPeakBytes, slurmTask.memoryPeakBytes), source: last.source, slurmTask }
        : { cpuNanos, memoryPeakBytes: last.memoryPeakBytes, source: last.source };
      if (this.d.table.get(jobId) === job) this.checkpoint(job);
    })();
    pending.add(measured);
    try {
      await measured;
    } finally {
      pending.delete(measured);
      if (pending.size === 0) this.measuring.delete(jobId);
    }
  }

  /**
   * A native step's start (its step prologue, or its spooled record with the time the plugin
   * gave), once per step and node: task 0 stands for the step.
   */
  startNative(jobId: string, stepId: string, argv: readonly string[], at?: Date): void {
    const rec = this.start(jobId, { stepId, taskId: 0, argv: [...argv], startTime: (at ?? this.now()).toISOString() });
    if (rec) this.open.set(`${jobId}.${stepId}`, rec);
  }

  /** whether the native step's start is recorded and its end has not come */
  isOpen(jobId: string, stepId: string): boolean {
    return this.open.has(`${jobId}.${stepId}`);
  }

  /**
   * A native step's end (its step epilogue), with the first failing task's status when
   * slurmstepd gave one. A step that began before berthd restarted was cut by recovery: its
   * real end replaces that.
   */
  endNative(jobId: string, stepId: string, outcome?: { exitCode: number; signal: string }, at?: Date): void {
    const key = `${jobId}.${stepId}`;
    const rec = this.open.get(key) ?? this.d.table.get(jobId)?.steps.find((s) => s.cutByRestart && s.stepId === stepId);
    if (!rec) return;
    this.open.delete(key);
    const state = outcome?.signal ? 'KILLED' : 'EXITED';
    void this.end(jobId, rec, { state, exitCode: outcome?.exitCode ?? 0, signal: outcome?.signal ?? '', ...(at ? { at } : {}) });
  }

  /**
   * Before the job is accounted for: waits (at most `waitMs`) for the ends of its native steps
   * still open — slurmstepd sends them right after srun has heard of the tasks' exits, so the
   * job's epilog may overtake them — then for the usage of ended steps still being read.
   */
  async settle(jobId: string, waitMs: number): Promise<void> {
    const prefix = `${jobId}.`;
    const isOpen = (): boolean => [...this.open.keys()].some((k) => k.startsWith(prefix));
    const until = Date.now() + waitMs;
    while (isOpen() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await Promise.all([...(this.measuring.get(jobId) ?? [])]);
  }

  /** After the job's epilogue: its native steps whose end never came are forgotten. */
  forgetJob(jobId: string): void {
    for (const k of this.open.keys()) if (k.startsWith(`${jobId}.`)) this.open.delete(k);
  }

  /** The job's checkpoint; a failure to write it is logged (the engine's labels still hold the job). */
  checkpoint(job: JobRecord): void {
    try {
      this.d.table.checkpoint(job);
    } catch (err) {
      this.d.log.warn('could not write job checkpoint', { job: job.jobId, error: errorMessage(err) });
    }
  }

  /** The container's CPU and memory now; undefined (logged) when they cannot be read. */
  async sample(containerId: string, log: Logger): Promise<ContainerUsage | undefined> {
    if (!this.d.usage || !containerId) return undefined;
    try {
      return await this.d.usage.containerUsage(containerId);
    } catch (err) {
      log.warn('could not read the container\'s CPU and memory use for accounting', { container: containerId, error: engineMessage(err) });
      return undefined;
    }
  }
}
