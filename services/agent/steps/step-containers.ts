// Containers for steps whose tasks the SPANK plugin launches natively (task-files.ts):
//   srun --container-name=N ...          the job's container if the job was named N, else the
//                                        step container named N made earlier in the job
//   srun --container-image=X ...         the job's container when X is the job's image and the
//                                        step asks for no mounts of its own; else a container
//                                        of the step's own, from X (pulled first), removed
//                                        when the step ends, or kept for the job's later
//                                        steps when it is also named
//   sbatch --container-batch (batch)     the job's container
import { BerthError, errorMessage } from '../../shared/errors';
import type { ContainerOptions } from '../../shared/container-options';
import type { ContainerEngine } from '../docker/engine';
import { LABEL, stepContainerName } from '../containers/labels';
import type { JobService } from '../jobs/job-service';
import type { StepRecord } from '../jobs/job-record';
import type { PrologueInput } from '../jobs/prologue-request';
import { checkPrologueRequest } from '../jobs/prologue-request';
import type { Logger } from '../logger';
import type { TaskFiles } from './task-files';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { isJobId } from '../../shared/ids';
import { agentJobStateDir } from '../../shared/paths';

export interface StepPrologueInput extends Omit<PrologueInput, 'cpus' | 'memoryBytes' | 'workDir'> {
  stepId: string;
  /** the step's command, for the job's accounting */
  argv?: string[];
}

export interface StepPrologueResult {
  containerName: string;
  stepContainer: boolean;
  pullMillis: number;
  imageDigest: string;
  /** what the container runs without, and why: task 0 prints it */
  warnings: string[];
}

interface Target {
  id: string;
  name: string;
  workdir: string;
  envNames: string[];
  digest: string;
  uid: number;
}

const STEP_ID = /^([0-9]+|batch)$/;

function digestOf(ref: string): string {
  const at = ref.lastIndexOf('@');
  return at >= 0 ? ref.slice(at + 1) : '';
}

/** names that always keep the task's own value: the user's identity and terminal */
const OWN_ENV = ['HOME', 'USER', 'LOGNAME', 'HOSTNAME', 'TERM'];

export class StepContainers {
  private readonly making = new Map<string, Promise<unknown>>();
  private readonly removing = new Map<string, Set<Promise<void>>>();
  /** native steps of jobs berthd holds, recorded like berth exec steps (JOB.STEP → record) */
  private readonly records = new Map<string, StepRecord>();

  constructor(private readonly d: {
    jobs: JobService;
    engine: ContainerEngine;
    files: TaskFiles;
    node: string;
    stateDir: string;
    stopGraceSeconds: number;
    log: Logger;
  }) {}

  async prologue(req: StepPrologueInput): Promise<StepPrologueResult> {
    const bad = (msg: string): never => {
      throw new BerthError('INVALID_REQUEST', `job ${req.jobId} step ${req.stepId}: ${msg}`);
    };
    if (!isJobId(req.jobId)) bad(`job id '${req.jobId}' is not a Slurm job id (digits only)`);
    if (!STEP_ID.test(req.stepId)) bad(`step id '${req.stepId}' is not a Slurm step id`);
    const o: ContainerOptions = req.options ?? { mounts: [], workdir: '', envNames: [], name: '' };
    const log = this.d.log.child({ job: req.jobId, step: req.stepId });
    const name = stepContainerName(this.d.node, req.jobId, { stepId: req.stepId, name: o.name });
    // steps started side by side that name one new container make it once
    const pending = this.making.get(name);
    if (pending) await pending.catch(() => undefined);
    let target = await this.find(req, o);
    let pullMillis = 0;
    let stepContainer = target !== undefined && target.id !== this.jobTarget(req.jobId)?.id;
    if (!target) {
      if (!req.image) {
        throw new BerthError('NO_CONTAINER', o.name
          ? `job ${req.jobId} has no container named '${o.name}' on ${this.d.node}; make it first with srun --container-image=IMAGE --container-name=${o.name}`
          : `job ${req.jobId} has no container on ${this.d.node}; give the step an image with srun --container-image=IMAGE`);
      }
      const input: PrologueInput = { ...req, workDir: '', cpus: 0, memoryBytes: 0, options: o };
      checkPrologueRequest(input);
      const making = this.d.jobs.makeContainer(input, { role: 'step', stepId: req.stepId, name, dir: this.stepDir(req.jobId, name) }, log);
      this.making.set(name, making);
      const made = await making.finally(() => this.making.delete(name));
      target = { id: made.containerId, name, workdir: made.identity.containerWorkdir ?? '', envNames: made.identity.envNames ?? [], digest: made.image.digestRef, uid: req.uid };
      pullMillis = made.image.millis;
      stepContainer = true;
      log.info('step container started', { container: made.containerId, image: made.image.digestRef, pulled: made.image.pulled, pullMillis });
    }
    if (target.uid !== req.uid) {
      throw new BerthError('NAME_CLASH', `job ${req.jobId}: container ${target.name} belongs to uid ${target.uid}, not ${req.uid}; use another --container-name`);
    }
    const details = await this.d.engine.inspect(target.id);
    if (!details?.running) throw new BerthError('JOB_NOT_RUNNING', `job ${req.jobId}: container ${target.name} on ${this.d.node} is not running`);
    this.d.files.write(req.jobId, req.stepId, {
      pid: details.pid,
      container: target.name,
      workdir: o.workdir || target.workdir,
      env: details.env,
      keepEnv: [...OWN_ENV, ...o.envNames, ...target.envNames],
    });
    if (o.name && stepContainer) this.d.files.markNamed(req.jobId, o.name);
    const rec = this.d.jobs.recordStepStart(req.jobId, { stepId: req.stepId, taskId: 0, argv: req.argv ?? [], startTime: new Date().toISOString() });
    if (rec) this.records.set(`${req.jobId}.${req.stepId}`, rec);
    const warnings = stepContainer ? [] : this.d.jobs.get(req.jobId)?.warnings ?? [];
    return { containerName: target.name, stepContainer, pullMillis, imageDigest: target.digest, warnings };
  }

  /** The task file goes; the step's own container too, unless it is named (kept for the job). */
  async epilogue(jobId: string, stepId: string, outcome?: { exitCode: number; signal: string }): Promise<{ containerRemoved: boolean }> {
    if (!isJobId(jobId) || !STEP_ID.test(stepId)) throw new BerthError('INVALID_REQUEST', `'${jobId}.${stepId}' is not a Slurm job and step id`);
    this.d.files.remove(jobId, stepId);
    // a step that began before berthd restarted: recovery marked it killed; its real end replaces that
    const rec = this.records.get(`${jobId}.${stepId}`) ?? this.d.jobs.get(jobId)?.steps.find((s) => s.cutByRestart && s.stepId === stepId);
    if (rec) {
      this.records.delete(`${jobId}.${stepId}`);
      const state = !outcome ? 'EXITED' : outcome.signal ? 'KILLED' : 'EXITED';
      void this.d.jobs.recordStepEnd(jobId, rec, { state, exitCode: outcome?.exitCode ?? 0, signal: outcome?.signal ?? '' });
    }
    const name = stepContainerName(this.d.node, jobId, { stepId });
    const c = await this.d.engine.inspect(name);
    if (!c) return { containerRemoved: false };
    // removed in the background: the step's tasks have ended and srun waits for this answer;
    // the job's epilogue settles what is still being removed before it lists the job's containers
    const removal = (async () => {
      try {
        await this.d.engine.stop(c.id, this.d.stopGraceSeconds);
        await this.d.engine.remove(c.id);
        rmSync(this.stepDir(jobId, name), { recursive: true, force: true });
        this.d.log.info('step container removed', { job: jobId, step: stepId, container: c.id });
      } catch (err) {
        this.d.log.warn('could not remove a step container; the job\'s epilogue removes it', { job: jobId, step: stepId, container: c.id, error: errorMessage(err) });
      }
    })();
    const pending = this.removing.get(jobId) ?? new Set<Promise<void>>();
    this.removing.set(jobId, pending);
    pending.add(removal);
    void removal.finally(() => {
      pending.delete(removal);
      if (pending.size === 0 && this.removing.get(jobId) === pending) this.removing.delete(jobId);
    });
    return { containerRemoved: true };
  }

  /**
   * Before the job's epilogue: waits (at most `waitMs`) for the ends of its native steps still
   * open here — slurmstepd sends them right after srun has heard of the tasks' exits, so the
   * job's epilog may overtake them — then for step containers still being removed.
   */
  async settle(jobId: string, waitMs = 10_000): Promise<void> {
    const open = () => [...this.records.keys()].some((k) => k.startsWith(`${jobId}.`));
    const until = Date.now() + waitMs;
    while (open() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await Promise.all([...(this.removing.get(jobId) ?? [])]);
  }

  /** After the job's epilogue: its task files (named step containers went with the job's label). */
  forgetJob(jobId: string): void {
    this.d.files.removeJob(jobId);
    for (const k of this.records.keys()) if (k.startsWith(`${jobId}.`)) this.records.delete(k);
  }

  private stepDir(jobId: string, name: string): string {
    return path.join(agentJobStateDir(this.d.stateDir, jobId), name);
  }

  private jobTarget(jobId: string): Target | undefined {
    const job = this.d.jobs.get(jobId);
    if (!job || job.state !== 'RUNNING' || !job.containerId) return undefined;
    return { id: job.containerId, name: job.containerName, workdir: job.containerWorkdir ?? '', envNames: job.envNames ?? [], digest: job.imageDigest, uid: job.uid };
  }

  /** The container the step joins when it exists already. */
  private async find(req: StepPrologueInput, o: ContainerOptions): Promise<Target | undefined> {
    const job = this.jobTarget(req.jobId);
    const ownMounts = o.mounts.length > 0 || o.mountHome !== undefined || o.readOnly !== undefined;
    // a pinned reference is the same image when the digest is; an unpinned one only when written the same
    const wanted = digestOf(req.image);
    const sameImage = (digest: string): boolean => !req.image || (wanted ? wanted === digestOf(digest) : req.image === digest);
    const mismatch = (t: Target): never => {
      throw new BerthError('NAME_CLASH', `job ${req.jobId}: the container named '${o.name}' runs ${t.digest}, not ${req.image}; drop --container-image to join it, or use another name`);
    };
    if (o.name) {
      if (job && this.d.jobs.get(req.jobId)?.name === o.name) return sameImage(job.digest) ? job : mismatch(job);
      const c = await this.d.engine.inspect(stepContainerName(this.d.node, req.jobId, { stepId: req.stepId, name: o.name }));
      if (!c) return undefined;
      const t: Target = {
        id: c.id, name: c.name, workdir: c.labels[LABEL.containerWorkdir] ?? '', envNames: (c.labels[LABEL.envNames] ?? '').split(',').filter(Boolean),
        digest: c.labels[LABEL.imageDigest] ?? '', uid: Number(c.labels[LABEL.uid]),
      };
      return sameImage(t.digest) ? t : mismatch(t);
    }
    if (job && (!req.image || sameImage(job.digest)) && !ownMounts) return job;
    return undefined;
  }
}
