// Job lifecycle on this node: prologue (the job's container, from containers/container-factory.ts),
// epilogue (every container of the job removed, its accounting written once) and recovery from
// the engine's labels after a restart. Steps are recorded by the step ledger (step-ledger.ts).
import { phaseTimes } from '../phase-times';
import type { SaveOutcome, SaveRequest } from '../images/container-save';
import { BerthError, errorMessage } from '../../shared/errors';
import type { AccountingLog } from '../accounting/accounting-log';
import { type AccountingSave, accountingRecords, faultedJobRecord } from '../accounting/accounting-record';
import type { AgentConfig } from '../config';
import { listBerthContainers } from '../containers/berth-containers';
import type { IssuedClientCertificate } from '../certs/node-ca';
import type { ContainerFactory } from '../containers/container-factory';
import { jobContainerName } from '../containers/labels';
import type { ContainerSeal } from '../containers/seal';
import type { ContainerEngine } from '../docker/engine';
import { engineMessage } from '../docker/engine';
import { agentFailure } from '../docker/engine-errors';
import { faultOf } from '../../shared/fault-class';
import type { JobFault, JobFaults } from './job-faults';
import type { Logger } from '../logger';
import { provenanceOf } from './job-provenance';
import type { JobRecord } from './job-record';
import type { JobTable } from './job-table';
import { checkPrologueRequest, type PrologueInput } from './prologue-request';
import { cutByRestart, type StepLedger } from './step-ledger';
import { isJobId } from '../../shared/ids';

export interface PrologueResult {
  job: JobRecord;
  alreadyPrepared: boolean;
  pullMillis: number;
}

export interface EpilogueResult {
  containersRemoved: number;
  wasKnown: boolean;
}

export interface EpilogueOptions {
  /** berthd ends the job itself, not at its epilog (reconcile at start, orphan sweep, a spooled epilog): accounting says SettledLate */
  settledLate?: boolean;
  /** the job's end for accounting when known to be earlier than now (a spooled epilog's time) */
  end?: Date;
  /**
   * how long to wait for the ends of the job's native steps still open (step-ledger.ts):
   * 10 s at the job's epilog, none when berthd ends the job itself (settledLate)
   */
  stepWaitMs?: number;
  /** --container-save's value, given by the epilog of the job's first node: the job's container is saved before it goes */
  save?: string;
}

export interface JobServiceDeps {
  config: AgentConfig;
  engine: ContainerEngine;
  /** makes and removes the job's containers */
  factory: ContainerFactory;
  /** the job's steps and its checkpoint */
  ledger: StepLedger;
  /** removes the named volumes a job's user made (the engine, where Docker access is on) */
  volumes?: { removeVolume(name: string): Promise<void> };
  table: JobTable;
  accounting: AccountingLog;
  log: Logger;
  /** tells the job's user something about their job where they read it (the job's AdminComment) */
  tellUser?: (jobId: string, text: string) => Promise<void>;
  /** recovery trusts only the containers berthd sealed (containers/seal.ts) */
  seal?: Pick<ContainerSeal, 'verify'>;
  /** Docker API access for the job's user (authz/docker-access.ts), when the site enables it */
  dockerAccess?: {
    /** the certificate grant hands out, made ahead (while dockerd starts the container) */
    issue?(job: { jobId: string; user: string; uid: number }, notAfter: Date): Promise<IssuedClientCertificate>;
    grant(job: { jobId: string; user: string; uid: number; gid: number }, notAfter: Date, issued?: Promise<IssuedClientCertificate>): Promise<void>;
    revoke(jobId: string): void;
  };
  /**
   * the job's native task files (steps/task-files.ts), removed with the job; the job's own
   * container published for the steps that join it (JOB.job, steps/step-containers.ts)
   */
  tasks?: { removeJob(jobId: string): void; publishJob?(jobId: string): Promise<void>; withdrawJob?(jobId: string): void };
  /** the records of the native steps that did not ask berthd (steps/step-spool.ts) */
  stepSpool?: { drain(jobId?: string): number; forgetJob(jobId: string): void };
  /** the job faults of this node, read by the SPANK plugin (jobs/job-faults.ts) */
  faults?: JobFaults;
  /** --container-save (images/container-save.ts) */
  saver?: { save(req: SaveRequest): Promise<SaveOutcome> };
  now?: () => Date;
}

export class JobService {
  private readonly inProgress = new Map<string, Promise<PrologueResult>>();
  /** the job's file for its steps being written after its prologue's reply, by job id */
  private readonly publishing = new Map<string, Promise<void>>();
  /** epilogues under way: a repeated or concurrent one (hook retry, sweep, spool) shares the run */
  private readonly ending = new Map<string, Promise<EpilogueResult>>();
  private readonly now: () => Date;

  constructor(private readonly d: JobServiceDeps) {
    this.now = d.now ?? (() => new Date());
  }

  get(jobId: string): JobRecord | undefined {
    return this.d.table.get(jobId);
  }

  list(): JobRecord[] {
    return this.d.table.list();
  }

  /** why the job's container could not be made here, when its prologue failed for a reason of its own */
  fault(jobId: string): JobFault | undefined {
    return isJobId(jobId) ? this.d.faults?.get(jobId) : undefined;
  }

  /**
   * A failed step prologue, as the error to answer with: the step fails either way (the SPANK
   * plugin prints the reason on its tasks' stderr); a job fault is also told to the user in
   * the job's AdminComment, as for the job's own prologue.
   */
  async stepPrologueFailed(req: { jobId: string; stepId: string }, err: unknown): Promise<unknown> {
    const e = agentFailure(req.jobId, err);
    const log = this.d.log.child({ job: req.jobId, step: req.stepId });
    // berthd's log has the failure from the handler (server/agent-service.ts), with its class
    if (!(e instanceof BerthError) || (e.fault ?? faultOf(e.code)) === 'node') return e;
    const reason = e.message.replace(new RegExp(`^job ${req.jobId}(?: step \\S+)?: `), '');
    await this.tell(req.jobId, `berth: step ${req.jobId}.${req.stepId} failed on ${this.d.config.node}: ${reason}`, log);
    return e;
  }

  /**
   * A failed prologue, classed by shared/fault-class.ts, as the error to answer with. A job
   * fault is recorded for the job's steps (which fail with it, jobs/job-faults.ts) and told to
   * the user (the job's AdminComment); the answer then says 'job' and the prolog exits 0, so
   * the node stays in service. A job fault that cannot be recorded becomes the node's: a job
   * whose steps would not learn of it must not start.
   */
  async prologueFailed(req: { jobId: string; uid: number; gid?: number; user?: string; image?: string; account?: string; partition?: string }, err: unknown, began?: Date): Promise<unknown> {
    const { config } = this.d;
    const log = this.d.log.child({ job: req.jobId });
    const e = agentFailure(req.jobId, err);
    // berthd's log has the failure from the handler (server/agent-service.ts), with its class
    if (!(e instanceof BerthError)) return e;
    if ((e.fault ?? faultOf(e.code)) === 'node' || !this.d.faults || !isJobId(req.jobId)) {
      return e.fault === 'node' || faultOf(e.code) === 'node' ? e : new BerthError(e.code, e.message, { cause: e.cause, fault: 'node' });
    }
    const reason = e.message.replace(new RegExp(`^job ${req.jobId}: `), '');
    try {
      this.d.faults.record({ jobId: req.jobId, uid: req.uid, code: e.code, reason, message: `berth: job ${req.jobId} fails on ${config.node}, no step runs there: ${reason}` });
    } catch (recordErr) {
      log.error('prologue failed: a job fault that could not be recorded for its steps, so a node fault', { code: e.code, error: e.message, record: errorMessage(recordErr) });
      return new BerthError(e.code, `${e.message} (berthd could not record this for the job's steps: ${errorMessage(recordErr)})`, { cause: e.cause, fault: 'node' });
    }
    await this.tell(req.jobId, `berth: job ${req.jobId} failed on ${config.node} before its first step: ${reason}`, log);
    // the node accounts for the job it ran no container for, once (a job fault's prolog is not repeated)
    try {
      const end = this.now().toISOString();
      this.d.accounting.append([faultedJobRecord({
        jobId: req.jobId, uid: req.uid, gid: req.gid ?? 0, user: req.user ?? '', image: req.image ?? '', account: req.account ?? '', partition: req.partition ?? '',
        node: config.node, start: (began ?? this.now()).toISOString(), end, code: e.code, reason,
      })]);
    } catch (acctErr) {
      log.error('could not write the accounting record of a job whose prologue failed', { error: errorMessage(acctErr) });
    }
    return new BerthError(e.code, e.message, { cause: e.cause, fault: 'job' });
  }

  /**
   * The job's AdminComment, before the hook is answered: once the prolog returns, the job's
   * steps fail at once and a job that has ended takes no update.
   */
  private async tell(jobId: string, text: string, log: Logger): Promise<void> {
    try {
      await this.d.tellUser?.(jobId, text);
    } catch (err) {
      log.warn('could not tell the user', { error: errorMessage(err) });
    }
  }

  /** Idempotent: a repeated prologue for a job whose container runs returns it; concurrent ones share one run. */
  prologue(req: PrologueInput): Promise<PrologueResult> {
    try {
      checkPrologueRequest(req);
    } catch (err) {
      return Promise.reject(err);
    }
    const running = this.inProgress.get(req.jobId);
    if (running) return running;
    // the job's file for its steps (publishJob: a container inspect, 3-4 ms) is written after the
    // reply; a step that comes before it asks berthd, as when it could not be written. The next
    // prologue of the job and its epilogue wait for it.
    const publishing = this.publishing.get(req.jobId);
    const p = (publishing ? publishing.then(() => this.runPrologue(req)) : this.runPrologue(req)).then(({ result, published }) => {
      if (published) {
        const settled: Promise<void> = published.catch(() => undefined).finally(() => {
          if (this.publishing.get(req.jobId) === settled) this.publishing.delete(req.jobId);
        });
        this.publishing.set(req.jobId, settled);
      }
      return result;
    }).finally(() => this.inProgress.delete(req.jobId));
    this.inProgress.set(req.jobId, p);
    return p;
  }

  private async runPrologue(req: PrologueInput): Promise<{ result: PrologueResult; published?: Promise<void> }> {
    const { config, engine, table } = this.d;
    const log = this.d.log.child({ job: req.jobId });
    const { lap, phases, elapsed } = phaseTimes();
    const existing = table.get(req.jobId);
    if (existing?.state === 'RUNNING' && existing.containerId && !existing.prologueCut) {
      const c = await engine.inspect(existing.containerId);
      if (c?.running) {
        if (existing.uid !== req.uid) {
          throw new BerthError('JOB_ID_IN_USE', `job ${req.jobId} already has a container on ${config.node} for uid ${existing.uid}, not ${req.uid}; run the epilog for the old job first`);
        }
        log.info('prologue repeated; job container already running', { container: c.id });
        await this.d.tasks?.publishJob?.(req.jobId);
        return { result: { job: existing, alreadyPrepared: true, pullMillis: 0 } };
      }
    }
    // without a time limit the certificate lasts a week; the AuthZ plugin still refuses it once the job ends
    const certificateEnd = (end: Date | undefined): Date => end ?? new Date(Date.now() + 7 * 86_400_000);
    let issuing: Promise<IssuedClientCertificate> | undefined;
    const made = await this.d.factory.make({ ...req, for: { role: 'job' } }, log, lap, {
      // the job's certificate is made while dockerd creates and starts the container (the policy
      // has admitted it); it is handed out only once the container runs, and dropped if it does not
      admitted: (identity, endTime) => {
        issuing = this.d.dockerAccess?.issue?.(identity, certificateEnd(endTime));
        issuing?.catch(() => undefined);
      },
    });
    const { identity, containerId, image } = made;
    try {
      await this.d.dockerAccess?.grant(identity, certificateEnd(made.endTime), issuing);
      lap('grantMillis');
    } catch (err) {
      await this.d.factory.discard(made);
      try {
        this.d.dockerAccess?.revoke(req.jobId);
      } catch {
        // nothing was written
      }
      // scancel (or the time limit) during the prolog: the job is over, which is no fault of the node's
      if (made.endTime !== undefined && made.endTime.getTime() <= Date.now()) {
        throw new BerthError('JOB_NOT_RUNNING', `job ${req.jobId} ended (${made.endTime.toISOString()}) before its container was ready on ${config.node}: `
          + 'it was cancelled or ran out of time during its prolog; nothing was started', { cause: err, fault: 'job' });
      }
      throw new BerthError(err instanceof BerthError ? err.code : 'ENGINE_FAILED', `job ${req.jobId}: could not grant Docker access: ${errorMessage(err)}`, { cause: err });
    }
    const job: JobRecord = {
      ...identity,
      containerId,
      containerName: made.name,
      state: 'RUNNING',
      endTime: '',
      error: '',
      steps: existing?.steps ?? [],
      userContainers: existing?.userContainers ?? [],
      ...(made.warnings.length ? { warnings: made.warnings } : {}),
      provenance: provenanceOf(made, req),
    };
    table.put(job);
    // a requeued job that failed here before has no fault any more
    this.d.faults?.clear(req.jobId);
    lap('recordMillis');
    // the steps that join the job's container as it is need not ask berthd for it
    const published = this.d.tasks?.publishJob?.(req.jobId);
    void this.d.factory.noteImageUse(image.localRef, log);
    if (made.warnings.length && this.d.tellUser) {
      void this.d.tellUser(req.jobId, made.warnings.join(' ')).catch((err: unknown) => log.warn('could not tell the user', { error: errorMessage(err) }));
    }
    log.info('job container started', { container: containerId, image: image.digestRef, pulled: image.pulled, pullMillis: image.millis, millis: elapsed(), ...phases });
    return { result: { job, alreadyPrepared: false, pullMillis: image.millis }, published };
  }

  /**
   * Stops and removes every container of the job on this node, writes its accounting once and
   * forgets it. Idempotent; concurrent calls for one job share one run.
   */
  epilogue(jobId: string, opts: EpilogueOptions = {}): Promise<EpilogueResult> {
    if (!isJobId(jobId)) return Promise.reject(new BerthError('INVALID_REQUEST', `job id '${jobId}' is not a Slurm job id (digits only)`));
    const running = this.ending.get(jobId);
    if (running) return running;
    const p = this.runEpilogue(jobId, opts).finally(() => this.ending.delete(jobId));
    this.ending.set(jobId, p);
    return p;
  }

  private async runEpilogue(jobId: string, opts: EpilogueOptions): Promise<EpilogueResult> {
    const { table, factory, ledger } = this.d;
    const log = this.d.log.child({ job: jobId });
    await this.inProgress.get(jobId)?.catch(() => undefined);
    await this.publishing.get(jobId);
    // no step joins the job's container from now on; the records its steps left are read first
    this.d.tasks?.withdrawJob?.(jobId);
    this.d.stepSpool?.drain(jobId);
    await ledger.settle(jobId, opts.stepWaitMs ?? (opts.settledLate ? 0 : 10_000));
    const job = table.get(jobId);
    // an epilogue had begun before (berthd restarted during it): its records may be written already
    const resumed = job?.state === 'ENDING';
    if (job) {
      job.state = 'ENDING';
      ledger.checkpoint(job);
    }
    // the container's CPU and memory, while its cgroup still exists
    const usage = job?.containerId ? await ledger.sample(job.containerId, log) : undefined;
    // --container-save: the job's container as its steps left it, before it is stopped; the job has
    // ended for Slurm (no AdminComment can be set any more), so the outcome goes to its accounting
    let save: AccountingSave | undefined;
    if (opts.save && job?.containerId && this.d.saver) {
      const saved = await this.d.saver.save({ jobId, uid: job.uid, user: job.user, containerId: job.containerId, imageDigest: job.imageDigest, target: opts.save });
      save = { Target: opts.save, Image: saved.saved ? saved.image : '', Error: saved.saved ? '' : saved.message };
    }
    // its job and step containers, and those its user made through the Docker API
    const containers = await factory.removeJobContainers(jobId, job?.userContainers ?? [], log);
    for (const name of job?.userVolumes ?? []) {
      try {
        await this.d.volumes?.removeVolume(name);
        log.info('removed the job user\'s volume', { volume: name });
      } catch (err) {
        log.warn('could not remove the job user\'s volume', { volume: name, error: engineMessage(err) });
      }
    }
    const now = this.now();
    // a spooled epilog's time, when it lies between the job's start and now
    const given = opts.end && opts.end < now && (!job || opts.end.toISOString() >= job.startTime) ? opts.end : undefined;
    const end = (given ?? now).toISOString();
    if (job) {
      for (const s of job.steps) {
        if (s.state === 'RUNNING') {
          s.state = 'KILLED';
          s.signal = s.signal || 'SIGKILL';
          s.endTime = end;
        }
      }
      job.state = job.state === 'ENDING' ? 'ENDED' : job.state;
      job.endTime = end;
      if (resumed && this.d.accounting.hasJobRecord({ jobId, node: job.node, start: job.startTime })) {
        log.warn('the job\'s accounting was written by an epilogue berthd was stopped during; not written again');
      } else {
        this.d.accounting.append(accountingRecords(job, end, usage, { settledLate: opts.settledLate, save }));
      }
      table.delete(jobId);
      log.info('job ended', { steps: job.steps.length, containers: containers.length, ...(opts.settledLate ? { settledLate: true } : {}) });
    }
    factory.forgetJob(jobId, log);
    this.d.faults?.clear(jobId);
    this.d.dockerAccess?.revoke(jobId);
    ledger.forgetJob(jobId);
    this.d.tasks?.removeJob(jobId);
    this.d.stepSpool?.forgetJob(jobId);
    return { containersRemoved: containers.length, wasKnown: job !== undefined || containers.length > 0 };
  }

  /** Rebuilds the table from the engine's labels, merging steps from checkpoints. */
  async recover(): Promise<{ recovered: number; unknown: number }> {
    const { engine, table, config } = this.d;
    const checkpoints = table.readCheckpoints();
    const containers = await listBerthContainers(engine, config.node, { seal: this.d.seal });
    let recovered = 0;
    let unknown = 0;
    for (const c of containers) {
      const id = c.identity;
      if (c.role !== 'job' || !id || c.name !== jobContainerName(config.node, id.jobId)) continue;
      if (this.d.seal && !c.sealed) {
        this.d.log.warn('a container carries berth\'s job labels without berth\'s seal: not trusted as a job container', { container: c.id, name: c.name, job: id.jobId });
        continue;
      }
      const saved = checkpoints.get(id.jobId);
      checkpoints.delete(id.jobId);
      const running = c.state === 'running';
      // an epilogue berthd was stopped during stays one: the job is ending
      const ending = saved?.state === 'ENDING';
      const job: JobRecord = {
        ...id,
        containerId: c.id,
        containerName: c.name,
        state: ending ? 'ENDING' : running ? 'RUNNING' : 'UNKNOWN',
        endTime: '',
        error: running || ending ? '' : `job container found ${c.state} when berthd started`,
        steps: cutByRestart(saved?.steps ?? []),
        userContainers: saved?.userContainers ?? [],
        ...(saved?.userVolumes ? { userVolumes: saved.userVolumes } : {}),
        ...(saved?.provenance ? { provenance: saved.provenance } : {}),
        ...(saved && !saved.prologueCut ? {} : { prologueCut: true }),
      };
      if (job.prologueCut) this.d.log.warn('a job container without its checkpoint: its prologue was cut off; a repeated prologue makes it again', { job: id.jobId, container: c.id, state: c.state });
      table.put(job);
      if (running) recovered++;
      else unknown++;
    }
    // checkpoints whose container is gone: keep them (state UNKNOWN) so the epilogue still accounts for the job
    for (const saved of checkpoints.values()) {
      if (saved.state === 'ENDING') {
        table.put({ ...saved, userContainers: saved.userContainers ?? [], steps: cutByRestart(saved.steps ?? []) });
      } else {
        table.put({ ...saved, userContainers: saved.userContainers ?? [], steps: cutByRestart(saved.steps ?? []), state: 'UNKNOWN', error: saved.error || 'job container missing when berthd started' });
      }
      unknown++;
    }
    this.d.log.info('recovered job table from the engine', { recovered, unknown });
    return { recovered, unknown };
  }

  /** A volume the job's user created through the Docker API belongs to the job, and goes with it. */
  addUserVolume(jobId: string, name: string): void {
    const job = this.d.table.get(jobId);
    if (!job) return;
    job.userVolumes ??= [];
    if (job.userVolumes.includes(name)) return;
    job.userVolumes.push(name);
    this.d.ledger.checkpoint(job);
  }

  /** A container the job's user created through the Docker API belongs to the job from now on. */
  addUserContainer(jobId: string, containerId: string): void {
    const job = this.d.table.get(jobId);
    if (!job || job.userContainers.includes(containerId)) return;
    job.userContainers.push(containerId);
    this.d.ledger.checkpoint(job);
  }
}
