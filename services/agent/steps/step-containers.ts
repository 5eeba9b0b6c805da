// Containers for steps whose tasks the SPANK plugin launches natively (task-files.ts):
//   srun --container-name=N ...          the job's container if the job was named N, else the
//                                        step container named N made earlier in the job, else
//                                        (N = JOB.STEP, as pyxis names an unnamed step's) that
//                                        step's container while it runs. N:create fails when
//                                        one exists, N:exec when none does; joining one warns
//                                        that the step's --container-mounts are not applied
//   srun --container-image=X ...         the job's container when X is the job's image and the
//                                        step asks for no mounts of its own; else a container
//                                        of the step's own, from X (pulled first), removed
//                                        when the step ends, or kept for the job's later
//                                        steps when it is also named
//   sbatch --container-image (batch)     the job's container, unless --no-container-batch
// The job's own container is also published in the task file JOB.job (task-files.ts) as soon as
// it runs: the steps that join it as it is read that, and this prologue is not asked for them.
import { phaseTimes } from '../phase-times';
import { BerthError, errorMessage } from '../../shared/errors';
import { type ContainerOptions, formatContainerName, OptionError, parseContainerName, parseUnshare, type UnshareNamespace } from '../../shared/container-options';
import { unsharedOf } from '../containers/job-container-spec';
import type { ContainerEngine } from '../docker/engine';
import { readBerthContainer } from '../containers/berth-containers';
import type { ContainerFactory } from '../containers/container-factory';
import { stepContainerName } from '../containers/labels';
import type { JobTable } from '../jobs/job-table';
import type { PrologueInput } from '../jobs/prologue-request';
import { checkPrologueRequest } from '../jobs/prologue-request';
import type { StepLedger } from '../jobs/step-ledger';
import type { Logger } from '../logger';
import type { TaskFiles } from './task-files';
import { isJobId } from '../../shared/ids';

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

const NAMESPACE_NAMES: Record<UnshareNamespace, string> = { net: 'network', ipc: 'IPC', uts: 'UTS' };

/** what of --container-unshare a container lacks (each berth container has an IPC namespace of its own) */
function missingNamespaces(labels: Readonly<Record<string, string>>, wanted: readonly UnshareNamespace[] | undefined): UnshareNamespace[] {
  const has = unsharedOf(labels);
  return (wanted ?? []).filter((n) => n !== 'ipc' && !has.includes(n));
}

/** the namespaces of the container's own that its tasks join besides IPC and mount (which they always join) */
function joinedNamespaces(labels: Readonly<Record<string, string>>): ('net' | 'uts')[] {
  return unsharedOf(labels).filter((n): n is 'net' | 'uts' => n === 'net' || n === 'uts');
}

interface Target {
  id: string;
  name: string;
  workdir: string;
  envNames: string[];
  digest: string;
  uid: number;
  /** an unnamed step's container, joined by its JOB.STEP */
  unnamedStep?: boolean;
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

  constructor(private readonly d: {
    /** makes and removes step containers */
    factory: Pick<ContainerFactory, 'make' | 'removeStepContainer'>;
    /** records the steps on their job's record */
    ledger: Pick<StepLedger, 'startNative' | 'endNative'>;
    /** the job's record: its container, image, options and warnings */
    table: Pick<JobTable, 'get'>;
    engine: Pick<ContainerEngine, 'inspect'>;
    files: TaskFiles;
    node: string;
    log: Logger;
  }) {}

  async prologue(req: StepPrologueInput): Promise<StepPrologueResult> {
    const bad = (msg: string): never => {
      throw new BerthError('INVALID_REQUEST', `job ${req.jobId} step ${req.stepId}: ${msg}`);
    };
    if (!isJobId(req.jobId)) bad(`job id '${req.jobId}' is not a Slurm job id (digits only)`);
    if (!STEP_ID.test(req.stepId)) bad(`step id '${req.stepId}' is not a Slurm step id`);
    const o: ContainerOptions = req.options ?? { mounts: [], workdir: '', envNames: [], name: '' };
    try {
      parseContainerName(formatContainerName(o));
      parseUnshare((o.unshare ?? []).join(','));
    } catch (err) {
      if (err instanceof OptionError) throw new BerthError('OPTIONS_INVALID', `job ${req.jobId} step ${req.stepId}: ${err.message}`);
      throw err;
    }
    const log = this.d.log.child({ job: req.jobId, step: req.stepId });
    const name = stepContainerName(this.d.node, req.jobId, { stepId: req.stepId, name: o.name });
    // steps started side by side that name one new container make it once
    const pending = this.making.get(name);
    if (pending) await pending.catch(() => undefined);
    let target = await this.find(req, o);
    const joined: string[] = [];
    if (target && o.name) {
      if (o.nameFlag === 'create') {
        throw new BerthError('NAME_CLASH', `job ${req.jobId}: --container-name=${o.name}:create makes a new container, but the job has one named '${o.name}' on ${this.d.node} already; drop :create to join it, or use another name`);
      }
      // what only applies when a container is made: pyxis too says it ignores it when attaching
      const ignored = [
        ...(o.mounts.length ? ['--container-mounts'] : []),
        ...(o.mountHome !== undefined ? [o.mountHome ? '--container-mount-home' : '--no-container-mount-home'] : []),
        ...(o.readOnly !== undefined ? [o.readOnly ? '--container-readonly' : '--container-writable'] : []),
      ];
      if (ignored.length) {
        joined.push(`berth: warning: ignoring ${ignored.join(', ')} when joining the existing container '${o.name}': its mounts and root file system were set when it was made; give them to the srun that makes it, or use another --container-name`);
      }
    }
    let pullMillis = 0;
    let stepContainer = target !== undefined && target.id !== this.jobTarget(req.jobId)?.id;
    if (!target) {
      if (o.nameFlag === 'exec') {
        throw new BerthError('NO_CONTAINER', `job ${req.jobId}: --container-name=${o.name}:exec joins a container that exists, and the job has none named '${o.name}' on ${this.d.node}; make it first with srun --container-image=IMAGE --container-name=${o.name}, or drop :exec`);
      }
      if (!req.image) {
        throw new BerthError('NO_CONTAINER', o.name
          ? `job ${req.jobId} has no container named '${o.name}' on ${this.d.node}; make it first with srun --container-image=IMAGE --container-name=${o.name}`
          : `job ${req.jobId} has no container on ${this.d.node}; give the step an image with srun --container-image=IMAGE`);
      }
      const input: PrologueInput = { ...req, workDir: '', cpus: 0, memoryBytes: 0, options: o };
      checkPrologueRequest(input);
      // each phase's time in the log line, as the job container's (for where a step's start goes)
      const { lap, phases, elapsed } = phaseTimes();
      const making = this.d.factory.make({ ...input, for: { role: 'step', stepId: req.stepId } }, log, lap);
      this.making.set(name, making);
      const made = await making.finally(() => this.making.delete(name));
      target = { id: made.containerId, name, workdir: made.identity.containerWorkdir ?? '', envNames: made.identity.envNames ?? [], digest: made.image.digestRef, uid: req.uid };
      pullMillis = made.image.millis;
      stepContainer = true;
      log.info('step container started', { container: made.containerId, image: made.image.digestRef, pulled: made.image.pulled, pullMillis, ...phases, millis: elapsed() });
    }
    if (target.uid !== req.uid) {
      throw new BerthError('NAME_CLASH', `job ${req.jobId}: container ${target.name} belongs to uid ${target.uid}, not ${req.uid}; use another --container-name`);
    }
    const details = await this.d.engine.inspect(target.id);
    if (!details?.running) throw new BerthError('JOB_NOT_RUNNING', `job ${req.jobId}: container ${target.name} on ${this.d.node} is not running`);
    const missing = missingNamespaces(details.labels, o.unshare);
    if (missing.length) {
      throw new BerthError('NO_CONTAINER', `job ${req.jobId}: --container-unshare=${missing.join(',')} was given, but container ${target.name} is not in a separate ${missing.map((n) => NAMESPACE_NAMES[n]).join(' or ')} namespace: its namespaces were set when it was made; give --container-unshare to the srun that makes it, or use another --container-name`);
    }
    this.d.files.write(req.jobId, req.stepId, {
      namespaces: joinedNamespaces(details.labels),
      pid: details.pid,
      container: target.name,
      workdir: o.workdir || target.workdir,
      env: details.env,
      keepEnv: [...OWN_ENV, ...o.envNames, ...target.envNames],
    });
    if (o.name && stepContainer && !target.unnamedStep) this.d.files.markNamed(req.jobId, o.name);
    // a step that asked here for the job's container: the job's file again, for the steps after it
    if (!stepContainer) {
      try {
        this.writeJobFile(req.jobId, target, details);
      } catch (err) {
        log.warn('could not publish the job container for its steps; they ask berthd instead', { error: errorMessage(err) });
      }
    }
    this.d.ledger.startNative(req.jobId, req.stepId, req.argv ?? []);
    const warnings = [...(stepContainer ? [] : this.d.table.get(req.jobId)?.warnings ?? []), ...joined];
    return { containerName: target.name, stepContainer, pullMillis, imageDigest: target.digest, warnings };
  }

  /** The task file goes; the step's own container too, unless it is named (kept for the job). */
  async epilogue(jobId: string, stepId: string, outcome?: { exitCode: number; signal: string }): Promise<{ containerRemoved: boolean }> {
    if (!isJobId(jobId) || !STEP_ID.test(stepId)) throw new BerthError('INVALID_REQUEST', `'${jobId}.${stepId}' is not a Slurm job and step id`);
    this.d.files.remove(jobId, stepId);
    this.d.ledger.endNative(jobId, stepId, outcome);
    // the job's epilogue waits for a removal still under way before it removes the job's containers
    return { containerRemoved: await this.d.factory.removeStepContainer(jobId, stepId, this.d.log.child({ job: jobId, step: stepId })) };
  }

  /**
   * JOB.job for the job's own container while it runs (written at the job's prologue and at
   * recovery); removed when the job has none running. A failure leaves the steps asking here.
   */
  async publishJob(jobId: string): Promise<void> {
    const target = this.jobTarget(jobId);
    const log = this.d.log.child({ job: jobId });
    try {
      const details = target && !this.d.table.get(jobId)?.prologueCut ? await this.d.engine.inspect(target.id) : undefined;
      if (target && details?.running) this.writeJobFile(jobId, target, details);
      else this.d.files.removeJobFile(jobId);
    } catch (err) {
      log.warn('could not publish the job container for its steps; they ask berthd instead', { error: errorMessage(err) });
      try {
        this.d.files.removeJobFile(jobId);
      } catch {
        // not there
      }
    }
  }

  /** the job is ending: its steps ask berthd again (which answers that it has no container) */
  withdrawJob(jobId: string): void {
    this.d.files.removeJobFile(jobId);
  }

  private writeJobFile(jobId: string, target: Target, details: { pid: number; env: string[]; labels: Record<string, string> }): void {
    this.d.files.writeJob(jobId, {
      namespaces: joinedNamespaces(details.labels),
      pid: details.pid, container: target.name, workdir: target.workdir, env: details.env, keepEnv: [...OWN_ENV, ...target.envNames],
      uid: target.uid, digest: target.digest, warnings: this.d.table.get(jobId)?.warnings ?? [],
    });
  }

  private jobTarget(jobId: string): Target | undefined {
    const job = this.d.table.get(jobId);
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
      if (job && this.d.table.get(req.jobId)?.name === o.name) return sameImage(job.digest) ? job : mismatch(job);
      let c = await this.d.engine.inspect(stepContainerName(this.d.node, req.jobId, { stepId: req.stepId, name: o.name }));
      // pyxis names an unnamed step's container JOB.STEP: a later step joins it by that name while it runs
      const unnamed = /^([0-9]+)\.([0-9]+)$/.exec(o.name);
      const unnamedStep = !c && unnamed !== null && unnamed[1] === req.jobId && unnamed[2] !== req.stepId;
      if (unnamedStep) c = await this.d.engine.inspect(stepContainerName(this.d.node, req.jobId, { stepId: unnamed[2]! }));
      if (!c) return undefined;
      const id = readBerthContainer(c, this.d.node)?.identity;
      const t: Target = {
        id: c.id, name: c.name, workdir: id?.containerWorkdir ?? '', envNames: id?.envNames ?? [], digest: id?.imageDigest ?? '', uid: id?.uid ?? Number.NaN,
        ...(unnamedStep ? { unnamedStep } : {}),
      };
      return sameImage(t.digest) ? t : mismatch(t);
    }
    if (job && (!req.image || sameImage(job.digest)) && !ownMounts) {
      // a step that asks for namespaces the job's container lacks gets a container of its own (with an image)
      if (!req.image || !o.unshare?.length) return job;
      const c = await this.d.engine.inspect(job.id);
      if (c && missingNamespaces(c.labels, o.unshare).length === 0) return job;
    }
    return undefined;
  }
}
