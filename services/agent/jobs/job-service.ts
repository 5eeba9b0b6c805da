// Job lifecycle on this node: prologue (image, container), steps bookkeeping, epilogue
// (stop, remove, account) and recovery from the engine's labels after a restart.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BerthError, errorMessage } from '../../shared/errors';
import type { AccountingLog } from '../accounting/accounting-log';
import { accountingRecords, type ContainerUsage, faultedJobRecord, mountsFromBinds, stepState } from '../accounting/accounting-record';
import { type AgentConfig, dockerSocketPath } from '../config';
import { applyUserOptions } from '../containers/user-options';
import { expandDevices } from '../containers/devices';
import { buildJobContainerSpec, policyView } from '../containers/job-container-spec';
import { type JobIdentity, jobContainerName, jobFromLabels, LABEL, ROLE_USER } from '../containers/labels';
import type { ImageUserFilesCache } from '../containers/image-user-files';
import { mergeGroup, mergePasswd } from '../containers/passwd';
import type { ContainerCreateSpec, ContainerEngine } from '../docker/engine';
import type { ContainerSeal } from '../containers/seal';
import type { ContainerOwners } from '../runtime/runtime-gate';
import type { JobCgroups } from '../runtime/job-cgroups';
import { engineMessage } from '../docker/engine';
import { agentFailure, containerFailure } from '../docker/engine-errors';
import { faultOf } from '../../shared/fault-class';
import type { JobFault, JobFaults } from './job-faults';
import type { IdentityResolver } from '../identity/nss';
import type { ImageService } from '../images/image-service';
import type { Logger } from '../logger';
import type { JobMetrics } from '../metrics/agent-metrics';
import type { JobRecord, StepRecord } from './job-record';
import type { JobTable } from './job-table';
import type { AllocationSource } from './slurm-allocation';
import { checkPrologueRequest, type PrologueInput } from './prologue-request';
import { reachablePath } from '../../shared/path-access';
import { OptionError } from '../../shared/container-options';
import { builtinSiteRules, type SiteRules } from '../../shared/site-rules';
import { judgeImageRegistry, type ProtectedPath } from '../../shared/site-rules-check';
import { isJobId } from '../../shared/ids';
import { registryHost } from '../../shared/images/registry-host';
import { agentJobStateDir } from '../../shared/paths';

export interface PrologueResult {
  job: JobRecord;
  alreadyPrepared: boolean;
  pullMillis: number;
}

export type ContainerKind = { role: 'job'; name: string; dir: string } | { role: 'step'; stepId: string; name: string; dir: string };

export interface MadeContainer {
  identity: JobIdentity;
  containerId: string;
  spec: ContainerCreateSpec;
  image: { ref: { domain: string }; digestRef: string; localRef: string; pulled: boolean; millis: number; pullBytes: number };
  endTime?: Date;
  /** container create + start */
  startLatencyMillis: number;
  /** what the container runs without, and why */
  warnings: string[];
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
}

/** what recovery writes into a step that was running when berthd stopped */
export const STEP_CUT_BY_RESTART = 'unknown (berthd restarted)';

export interface JobServiceDeps {
  config: AgentConfig;
  engine: ContainerEngine;
  /** removes the named volumes a job's user made (the engine, where Docker access is on) */
  volumes?: { removeVolume(name: string): Promise<void> };
  images: ImageService;
  imageUserFiles: ImageUserFilesCache;
  identities: IdentityResolver;
  table: JobTable;
  accounting: AccountingLog;
  log: Logger;
  /** memlock for job containers, bytes or -1: see containers/memlock.ts */
  memlockBytes: number;
  /** the job's CPUs and memory on this node; the request's figures are used when it has none */
  allocations?: AllocationSource;
  /**
   * The site policy's verdict on the job container berthd is about to create (the same
   * engine that judges users' Docker requests); absent when no policy is configured.
   */
  admit?: (body: Record<string, unknown>, ctx: { user: string; groups: string[]; job: { jobId: string; uid: number; gid: number; cpus: number; memoryBytes: number; devices: string[]; mountPrefixes: string[]; groupIds: number[] } }) => { allow: boolean; message: string };
  /** berth-runc's gate: whose containers are about to run, and the job's cgroup (runtime/runtime-gate.ts) */
  runtime?: { owners: ContainerOwners; cgroups: JobCgroups; jobPidsLimit: number };
  /** whether the job's user could open a host path themselves (the real file system; unit tests give their own) */
  reachable?: (p: string, who: { uid: number; gids: readonly number[] }, what: string) => string;
  /** tells the job's user something about their job where they read it (the job's AdminComment) */
  tellUser?: (jobId: string, text: string) => Promise<void>;
  /** seals the containers berthd makes, so that recovery trusts only those (containers/seal.ts) */
  seal?: ContainerSeal;
  /** records when each image was last used by a job, for the image GC's order */
  imageUses?: { used(imageId: string): void };
  /** Docker API access for the job's user (authz/docker-access.ts), when the site enables it */
  dockerAccess?: { grant(job: { jobId: string; user: string; uid: number; gid: number }, notAfter: Date): Promise<void>; revoke(jobId: string): void };
  /** CPU and memory of a container from its cgroup (docker stats otherwise), for accounting */
  usage?: { containerUsage(id: string): Promise<ContainerUsage | undefined> };
  metrics?: JobMetrics;
  /** the site rules in force (shared/site-rules.ts; reloaded on SIGHUP); berth's built-in ones when absent */
  siteRules?: () => SiteRules;
  /**
   * Before any container is made: throws when the node lacks what every container needs
   * (admin/node-check.ts), after draining the node for container jobs with that reason.
   */
  nodeReady?: (jobId: string) => void | Promise<void>;
  /** the job faults of this node, read by the SPANK plugin (jobs/job-faults.ts) */
  faults?: JobFaults;
  now?: () => Date;
}

export class JobService {
  private readonly inProgress = new Map<string, Promise<PrologueResult>>();
  /** epilogues under way: a repeated or concurrent one (hook retry, sweep, spool) shares the run */
  private readonly ending = new Map<string, Promise<EpilogueResult>>();
  private readonly now: () => Date;
  /** each running step's usage sample at its start, awaited by its end */
  private readonly stepStartUsage = new WeakMap<StepRecord, Promise<ContainerUsage | undefined>>();
  /** steps of a job whose end usage is being read: the epilogue waits for them */
  private readonly stepEnds = new Map<string, Set<Promise<void>>>();

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
    const p = this.runPrologue(req).finally(() => this.inProgress.delete(req.jobId));
    this.inProgress.set(req.jobId, p);
    return p;
  }

  private async runPrologue(req: PrologueInput): Promise<PrologueResult> {
    const { config, engine, table } = this.d;
    const log = this.d.log.child({ job: req.jobId });
    const began = Date.now();
    const phases: Record<string, number> = {};
    const lap = (name: string): void => {
      phases[name] = Date.now() - began - Object.values(phases).reduce((a, b) => a + b, 0);
    };
    const existing = table.get(req.jobId);
    if (existing?.state === 'RUNNING' && existing.containerId && !existing.prologueCut) {
      const c = await engine.inspect(existing.containerId);
      if (c?.running) {
        if (existing.uid !== req.uid) {
          throw new BerthError('INVALID_REQUEST', `job ${req.jobId} already has a container on ${config.node} for uid ${existing.uid}, not ${req.uid}; run the epilog for the old job first`);
        }
        log.info('prologue repeated; job container already running', { container: c.id });
        return { job: existing, alreadyPrepared: true, pullMillis: 0 };
      }
    }
    const made = await this.makeContainer(req, { role: 'job', name: jobContainerName(config.node, req.jobId), dir: this.jobDir(req.jobId) }, log, lap);
    const { identity, containerId, spec, image } = made;
    try {
      // without a time limit the certificate lasts a week; the AuthZ plugin still refuses it once the job ends
      await this.d.dockerAccess?.grant(identity, made.endTime ?? new Date(Date.now() + 7 * 86_400_000));
    } catch (err) {
      await engine.remove(containerId).catch(() => undefined);
      rmSync(this.jobDir(req.jobId), { recursive: true, force: true });
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
      throw new BerthError('ENGINE_FAILED', `job ${req.jobId}: could not grant Docker access: ${errorMessage(err)}`, { cause: err });
    }
    const job: JobRecord = {
      ...identity,
      containerId,
      containerName: spec.name,
      state: 'RUNNING',
      endTime: '',
      error: '',
      steps: existing?.steps ?? [],
      userContainers: existing?.userContainers ?? [],
      ...(made.warnings.length ? { warnings: made.warnings } : {}),
      provenance: {
        account: req.account ?? '',
        partition: req.partition ?? '',
        registry: registryHost(image.ref.domain),
        mounts: mountsFromBinds((spec.body.HostConfig as { Binds: string[] }).Binds),
        devices: (spec.body.HostConfig as { Devices: { PathOnHost: string }[] }).Devices.map((d) => d.PathOnHost),
        pulled: image.pulled,
        pullMillis: image.millis,
        pullBytes: image.pullBytes,
        startLatencyMillis: made.startLatencyMillis,
      },
    };
    table.put(job);
    // a requeued job that failed here before has no fault any more
    this.d.faults?.clear(req.jobId);
    void this.noteImageUse(image.localRef, log);
    if (made.warnings.length && this.d.tellUser) {
      void this.d.tellUser(req.jobId, made.warnings.join(' ')).catch((err: unknown) => log.warn('could not tell the user', { error: errorMessage(err) }));
    }
    log.info('job container started', { container: containerId, image: image.digestRef, pulled: image.pulled, pullMillis: image.millis, millis: Date.now() - began, ...phases });
    return { job, alreadyPrepared: false, pullMillis: image.millis };
  }

  /**
   * Resolves and pulls the image, checks the user's options and the site policy, then creates
   * and starts a container for the job (the job container, or a step container): nothing is
   * left behind when any part fails.
   */
  async makeContainer(req: PrologueInput, kind: ContainerKind, log: Logger, lap: (phase: string) => void = () => undefined): Promise<MadeContainer> {
    const { config, engine } = this.d;
    await this.d.nodeReady?.(req.jobId);
    const site = this.d.siteRules?.() ?? builtinSiteRules();
    try {
      judgeImageRegistry(req.requestedImage || req.image, site);
    } catch (err) {
      if (err instanceof OptionError) throw new BerthError('POLICY_DENIED', `job ${req.jobId}: ${err.message}`);
      throw err;
    }
    // independent look-ups, side by side: NSS then the registry (and a pull) with the user's
    // credentials, and slurmctld
    const userLookup = this.d.identities.lookup(req.uid, req.user);
    const [user, image, alloc] = await Promise.all([
      userLookup,
      userLookup.then((u) => this.d.images.ensure(req.image, { user: { uid: req.uid, home: u.home } })),
      this.d.allocations?.allocation(req.jobId, config.node),
    ]);
    lap('lookupMillis');
    const applied = applyUserOptions(req.jobId, req.options, { uid: req.uid, gids: [req.gid, ...user.groups.map((g) => g.gid)], home: user.home }, req.workDir, {
      site, ownPaths: ownPaths(config),
    });
    // the job's working directory is mounted only if its user could open it: dockerd mounts as root
    const warnings: string[] = [];
    let workDir = req.workDir;
    if (workDir) {
      try {
        (this.d.reachable ?? reachablePath)(workDir, { uid: req.uid, gids: [req.gid, ...user.groups.map((g) => g.gid)] }, 'the working directory');
      } catch (err) {
        warnings.push(`berth: warning: job ${req.jobId} runs without its working directory in the container: ${errorMessage(err)}; steps start in / (give sbatch --chdir a directory you can open)`);
        workDir = '';
      }
    }
    const identity: JobIdentity = {
      jobId: req.jobId,
      node: config.node,
      uid: req.uid,
      gid: req.gid,
      user: user.name,
      imageRef: req.requestedImage || image.ref.text,
      imageDigest: image.digestRef,
      workDir,
      startTime: this.now().toISOString(),
      containerWorkdir: applied.workdir,
      envNames: applied.envNames,
      name: applied.name,
      mountTargets: applied.mountTargets,
      ...(kind.role === 'step' ? { role: 'step', stepId: kind.stepId } : {}),
    };
    // per-container passwd and group, bind-mounted read-only over the image's
    const base = await this.d.imageUserFiles.get(image.localRef);
    mkdirSync(kind.dir, { recursive: true, mode: 0o755 });
    const userFiles = { passwd: path.join(kind.dir, 'passwd'), group: path.join(kind.dir, 'group') };
    writeFileSync(userFiles.passwd, mergePasswd(base.passwd, { ...user, shell: '/bin/sh', gid: req.gid }), { mode: 0o644 });
    writeFileSync(userFiles.group, mergeGroup(base.group, user.name, user.groups), { mode: 0o644 });
    lap('filesMillis');
    const cpus = alloc?.cpus || req.cpus;
    const memoryBytes = alloc?.memoryBytes || req.memoryBytes;
    const spec = buildJobContainerSpec({
      identity,
      name: kind.name,
      image: image.localRef,
      supplementaryGids: user.groups.map((g) => g.gid),
      cpus,
      memoryBytes,
      devices: expandDevices(config.rdmaDevices),
      mounts: site.mounts,
      initBinary: config.initBinary,
      memlockBytes: this.d.memlockBytes,
      userFiles,
      userMounts: applied.mounts,
      readOnly: applied.readOnly,
      workingDir: applied.workdir,
      hostFiles: [config.taskProlog, config.slurmdSpoolDir].filter((f) => existsSync(f)),
    });
    if (this.d.admit) {
      const verdict = this.d.admit(policyView(spec.body), {
        user: user.name,
        groups: user.groups.map((g) => g.name),
        job: {
          jobId: req.jobId, uid: req.uid, gid: req.gid, cpus, memoryBytes,
          devices: (spec.body.HostConfig as { Devices: { PathOnHost: string }[] }).Devices.map((d) => d.PathOnHost),
          // berth's own files (berth-init, the per-container passwd and group) and the job's directories
          mountPrefixes: [config.initBinary, config.taskProlog, config.slurmdSpoolDir, kind.dir, workDir, ...site.mounts.map((m) => m.source), ...applied.mountSources].filter(Boolean),
          groupIds: user.groups.map((g) => g.gid),
        },
      });
      if (!verdict.allow) {
        rmSync(kind.dir, { recursive: true, force: true });
        throw new BerthError('POLICY_DENIED', `job ${req.jobId}: ${verdict.message}`);
      }
    }
    if (this.d.seal) spec.body.Labels = this.d.seal.seal(spec.name, spec.body.Labels as Record<string, string>);
    await this.removeStale(spec.name, log);
    let containerId = '';
    let startLatencyMillis = 0;
    try {
      const createdAt = Date.now();
      containerId = await engine.create(spec);
      lap('createMillis');
      this.d.runtime?.owners.expect(containerId, {
        jobId: req.jobId, uid: req.uid, gid: req.gid, gids: user.groups.map((g) => g.gid), role: kind.role,
        limits: { cpus, memoryBytes, pids: this.d.runtime.jobPidsLimit },
      });
      await engine.start(containerId);
      lap('startMillis');
      startLatencyMillis = Date.now() - createdAt;
      this.d.metrics?.containerStarted(startLatencyMillis / 1000);
    } catch (err) {
      if (containerId) await engine.remove(containerId).catch(() => undefined);
      rmSync(kind.dir, { recursive: true, force: true });
      log.error('container could not be started', { error: engineMessage(err), role: kind.role });
      // the paths the job's user chose or owns: berth-runc refusing one of them is the job's fault
      throw containerFailure(req.jobId, image.digestRef, err, [...applied.mounts.map((m) => m.source), workDir]);
    }
    for (const w of warnings) log.warn('job container made without a path its user cannot reach', { warning: w });
    return { identity, containerId, spec, image, endTime: alloc?.endTime, startLatencyMillis, warnings };
  }

  private async noteImageUse(ref: string, log: Logger): Promise<void> {
    if (!this.d.imageUses) return;
    try {
      const id = await this.d.images.imageId(ref);
      if (id) this.d.imageUses.used(id);
    } catch (err) {
      log.warn('could not record the image use for the image GC', { image: ref, error: errorMessage(err) });
    }
  }

  /** Per-job files (passwd, group), removed by the epilogue. */
  private jobDir(jobId: string): string {
    return agentJobStateDir(this.d.config.stateDir, jobId);
  }

  /** A container left under the job's name (a failed or interrupted earlier prologue) is removed. */
  private async removeStale(name: string, log: Logger): Promise<void> {
    const c = await this.d.engine.inspect(name);
    if (!c) return;
    log.warn('removing a stale container left by an earlier prologue', { container: c.id, state: c.state });
    await this.d.engine.remove(c.id);
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
    const { engine, table, config } = this.d;
    const log = this.d.log.child({ job: jobId });
    await this.inProgress.get(jobId)?.catch(() => undefined);
    await Promise.all([...(this.stepEnds.get(jobId) ?? [])]);
    const job = table.get(jobId);
    // an epilogue had begun before (berthd restarted during it): its records may be written already
    const resumed = job?.state === 'ENDING';
    if (job) {
      job.state = 'ENDING';
      this.safeCheckpoint(job);
    }
    // berth's containers of the job on this node, and those its user made (labelled by the job's endpoint)
    const labelled = (await engine.listByLabel(LABEL.jobId, jobId))
      .filter((c) => c.labels[LABEL.node] === config.node || c.labels[LABEL.role] === ROLE_USER).map((c) => c.id);
    // the container's CPU and memory, while its cgroup still exists
    const usage = job?.containerId ? await this.usageOf(job.containerId, log) : undefined;
    // with the containers the job's user made through the Docker API
    const containers = [...new Set([...labelled, ...(job?.userContainers ?? [])])];
    await Promise.all(containers.map(async (id) => {
      await engine.stop(id, config.stopGraceSeconds);
      await engine.remove(id);
      log.info('removed job container', { container: id });
    }));
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
        this.d.accounting.append(accountingRecords(job, end, usage, { settledLate: opts.settledLate }));
      }
      table.delete(jobId);
      log.info('job ended', { steps: job.steps.length, containers: containers.length, ...(opts.settledLate ? { settledLate: true } : {}) });
    }
    rmSync(this.jobDir(jobId), { recursive: true, force: true });
    this.d.faults?.clear(jobId);
    this.d.dockerAccess?.revoke(jobId);
    if (this.d.runtime) {
      this.d.runtime.owners.forgetJob(jobId);
      const left = this.d.runtime.cgroups.remove(jobId);
      if (left.length) log.warn('the job\'s cgroups still hold processes and stay', { cgroups: left });
    }
    return { containersRemoved: containers.length, wasKnown: job !== undefined || containers.length > 0 };
  }

  /** Rebuilds the table from the engine's labels, merging steps from checkpoints. */
  async recover(): Promise<{ recovered: number; unknown: number }> {
    const { engine, table, config } = this.d;
    const checkpoints = table.readCheckpoints();
    const containers = (await engine.listByLabel(LABEL.node, config.node));
    let recovered = 0;
    let unknown = 0;
    for (const c of containers) {
      const id = jobFromLabels(c.labels);
      if (!id || c.name !== jobContainerName(config.node, id.jobId)) continue;
      if (this.d.seal && !this.d.seal.verify(c.name, c.labels)) {
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
        steps: cutSteps(saved?.steps ?? []),
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
        table.put({ ...saved, userContainers: saved.userContainers ?? [], steps: cutSteps(saved.steps ?? []) });
      } else {
        table.put({ ...saved, userContainers: saved.userContainers ?? [], steps: cutSteps(saved.steps ?? []), state: 'UNKNOWN', error: saved.error || 'job container missing when berthd started' });
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
    this.safeCheckpoint(job);
  }

  /** A container the job's user created through the Docker API belongs to the job from now on. */
  addUserContainer(jobId: string, containerId: string): void {
    const job = this.d.table.get(jobId);
    if (!job || job.userContainers.includes(containerId)) return;
    job.userContainers.push(containerId);
    this.safeCheckpoint(job);
  }

  recordStepStart(jobId: string, step: Omit<StepRecord, 'state' | 'exitCode' | 'signal' | 'endTime'>): StepRecord | undefined {
    const job = this.d.table.get(jobId);
    if (!job) return undefined;
    const rec: StepRecord = { ...step, state: 'RUNNING', exitCode: 0, signal: '', endTime: '' };
    // a step prologue repeated through a restart of berthd: the record of the cut-off one goes
    job.steps = job.steps.filter((s) => !(s.cutByRestart && s.stepId === step.stepId && s.taskId === step.taskId));
    job.steps.push(rec);
    this.safeCheckpoint(job);
    if (this.d.usage) this.stepStartUsage.set(rec, this.usageOf(job.containerId, this.d.log.child({ job: jobId })));
    this.d.metrics?.stepStarted();
    return rec;
  }

  /** Records the step's end at once, then its usage (the container's CPU over the step, its memory peak so far). */
  async recordStepEnd(jobId: string, rec: StepRecord, end: { state: StepRecord['state']; exitCode: number; signal?: string }): Promise<void> {
    rec.state = end.state;
    rec.exitCode = end.exitCode;
    rec.signal = end.signal ?? '';
    rec.endTime = this.now().toISOString();
    delete rec.cutByRestart;
    this.d.metrics?.stepEnded(stepState(rec));
    const job = this.d.table.get(jobId);
    if (job) this.safeCheckpoint(job);
    const atStart = this.stepStartUsage.get(rec);
    if (!atStart || !job) return;
    this.stepStartUsage.delete(rec);
    const pending = this.stepEnds.get(jobId) ?? new Set<Promise<void>>();
    this.stepEnds.set(jobId, pending);
    const measured = (async () => {
      const [first, last] = await Promise.all([atStart, this.usageOf(job.containerId, this.d.log.child({ job: jobId }))]);
      if (!first || !last) return;
      rec.usage = { cpuNanos: Math.max(0, last.cpuNanos - first.cpuNanos), memoryPeakBytes: last.memoryPeakBytes, source: last.source };
      if (this.d.table.get(jobId) === job) this.safeCheckpoint(job);
    })();
    pending.add(measured);
    try {
      await measured;
    } finally {
      pending.delete(measured);
      if (pending.size === 0) this.stepEnds.delete(jobId);
    }
  }

  private async usageOf(containerId: string, log: Logger): Promise<ContainerUsage | undefined> {
    if (!this.d.usage || !containerId) return undefined;
    try {
      return await this.d.usage.containerUsage(containerId);
    } catch (err) {
      log.warn('could not read the container\'s CPU and memory use for accounting', { container: containerId, error: engineMessage(err) });
      return undefined;
    }
  }

  private safeCheckpoint(job: JobRecord): void {
    try {
      this.d.table.checkpoint(job);
    } catch (err) {
      this.d.log.warn('could not write job checkpoint', { job: job.jobId, error: errorMessage(err) });
    }
  }
}

/** berthd's own paths on this node: never a mount source, whatever the site rules say */
export function ownPaths(config: AgentConfig): ProtectedPath[] {
  return ([['runDir', config.runDir], ['stateDir', config.stateDir], ['dockerHost', dockerSocketPath(config)], ['initBinary', path.dirname(config.initBinary)]] as const)
    .map(([key, p]) => ({ path: p, source: `berthd's ${key} on ${config.node}` }));
}

/** steps that were running when berthd stopped: killed, as far as berthd knows (a native step's end may still come) */
function cutSteps(steps: StepRecord[]): StepRecord[] {
  return steps.map((s) => (s.state === 'RUNNING' ? { ...s, state: 'KILLED', signal: s.signal || STEP_CUT_BY_RESTART, cutByRestart: true } : s));
}
