// Makes, starts, rolls back and removes berth's containers: the job's container and the
// containers of its steps (steps/step-containers.ts), from one request. The job's and the
// steps' services both use it; it knows neither. What it made (name, mounts, devices, image,
// figures) comes back as values.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BerthError, errorMessage } from '../../shared/errors';
import { isTmpfs, OptionError } from '../../shared/container-options';
import { reachablePath } from '../../shared/path-access';
import { agentJobStateDir } from '../../shared/paths';
import { builtinSiteRules, type SiteRules } from '../../shared/site-rules';
import { judgeImageRegistry, mountText } from '../../shared/site-rules-check';
import type { AgentConfig } from '../config';
import { type ContainerEngine, engineMessage, engineStatus } from '../docker/engine';
import { containerFailure } from '../docker/engine-errors';
import type { IdentityResolver } from '../identity/nss';
import type { ImageService } from '../images/image-service';
import type { PrologueInput } from '../jobs/prologue-request';
import type { AllocationSource } from '../jobs/slurm-allocation';
import type { JobDeviceSet } from '../devices/job-devices';
import type { PullProgress } from '../docker/pull-stream';
import type { PullNotice } from '../images/pull-notice';
import type { JobCpuset } from '../runtime/job-cgroups';
import type { Logger } from '../logger';
import type { JobMetrics } from '../metrics/agent-metrics';
import type { JobCgroups } from '../runtime/job-cgroups';
import type { ContainerOwners } from '../runtime/runtime-gate';
import { listBerthContainers } from './berth-containers';
import { expandDevices } from './devices';
import type { ImageUserFilesCache } from './image-user-files';
import { buildJobContainerSpec, policyView, type SiteMount, userTmpfsProblem } from './job-container-spec';
import { type JobIdentity, jobContainerName, stepContainerName } from './labels';
import { mergeGroup, mergePasswd } from './passwd';
import type { ContainerSeal } from './seal';
import { applyUserOptions } from './user-options';

/** What to make: the job's container, or one for a step (another image, or a --container-name of its own). */
export interface ContainerRequest extends PrologueInput {
  for: { role: 'job' } | { role: 'step'; stepId: string };
}

export interface MakeHooks {
  /** the container passed the site policy and is about to be created: what it will be, and the job's end when Slurm said */
  admitted?: (identity: JobIdentity, endTime: Date | undefined) => void;
}

export interface MadeContainer {
  identity: JobIdentity;
  containerId: string;
  name: string;
  /** per-container files (passwd, group): removed with the container */
  dir: string;
  image: { ref: { domain: string }; digestRef: string; localRef: string; pulled: boolean; millis: number; pullBytes: number };
  /** every bind the container was created with */
  mounts: readonly SiteMount[];
  /** host paths of the devices passed through */
  devices: readonly string[];
  /** the job's GPUs among them (their own device files, in Slurm's order) */
  gpus: readonly string[];
  /** the CPUs the container runs on (cpuset.cpus, Linux numbering); '' when not known */
  cpuset: string;
  /** the job's end as Slurm has it, when known */
  endTime?: Date;
  /** container create + start */
  startLatencyMillis: number;
  /** what the container runs without, and why */
  warnings: string[];
}

export interface ContainerFactoryDeps {
  config: AgentConfig;
  engine: ContainerEngine;
  images: ImageService;
  imageUserFiles: ImageUserFilesCache;
  identities: IdentityResolver;
  log: Logger;
  /** memlock for job containers, bytes or -1: see containers/memlock.ts */
  memlockBytes: number;
  /** the job's CPUs and memory on this node; the request's figures are used when it has none */
  allocations?: AllocationSource;
  /** tells the job's user how a long image pull is going */
  pullNotice?: (jobId: string, image: string) => PullNotice;
  /** Slurm's CPU_IDs in Linux's numbering with their NUMA nodes (runtime/cpu-topology.ts) */
  cpusetOf?: (cpuIds: string) => JobCpuset;
  /** the job's device nodes on this node: its HCAs and GPUs (devices/job-devices.ts); the node's RDMA devices when absent */
  jobDevices?: (jobId: string) => Promise<JobDeviceSet>;
  /**
   * The site policy's verdict on the container berthd is about to create (the same engine
   * that judges users' Docker requests); absent when no policy is configured.
   */
  admit?: (body: Record<string, unknown>, ctx: { user: string; groups: string[]; job: { jobId: string; uid: number; gid: number; cpus: number; memoryBytes: number; devices: string[]; mountPrefixes: string[]; groupIds: number[] } }) => { allow: boolean; message: string };
  /** berth-runc's gate: whose containers are about to run, and the job's cgroup (runtime/runtime-gate.ts) */
  runtime?: { owners: ContainerOwners; cgroups: JobCgroups; jobPidsLimit: number };
  /** whether the job's user could open a host path themselves (the real file system; unit tests give their own) */
  reachable?: (p: string, who: { uid: number; gids: readonly number[] }, what: string) => string;
  /** seals the containers berthd makes, so that recovery trusts only those (containers/seal.ts) */
  seal?: ContainerSeal;
  /** records when each image was last used by a job, for the image GC's order */
  imageUses?: { used(imageId: string): void };
  metrics?: Pick<JobMetrics, 'containerStarted'>;
  /** the site rules in force (shared/site-rules.ts; reloaded on SIGHUP); berth's built-in ones when absent */
  siteRules?: () => SiteRules;
  /**
   * Before any container is made: throws when the node lacks what every container needs
   * (admin/node-check.ts), after draining the node for container jobs with that reason.
   */
  nodeReady?: (jobId: string) => void | Promise<void>;
  now?: () => Date;
}

export class ContainerFactory {
  /** step containers being removed in the background, by job: the job's removal waits for them */
  private readonly removing = new Map<string, Set<Promise<void>>>();
  /** the unnamed step containers this berthd made, by name: their epilogue needs no look-up */
  private readonly stepContainerIds = new Map<string, string>();
  private readonly now: () => Date;

  constructor(private readonly d: ContainerFactoryDeps) {
    this.now = d.now ?? (() => new Date());
  }

  /** the container's deterministic name */
  nameOf(req: Pick<ContainerRequest, 'jobId' | 'for' | 'options'>): string {
    const { node } = this.d.config;
    return req.for.role === 'job' ? jobContainerName(node, req.jobId) : stepContainerName(node, req.jobId, { stepId: req.for.stepId, name: req.options?.name });
  }

  /** the job's own files on this node (the job container's passwd and group; each step container's in a folder below) */
  jobDir(jobId: string): string {
    return agentJobStateDir(this.d.config.stateDir, jobId);
  }

  /**
   * Resolves and pulls the image, checks the user's options and the site policy, then creates
   * and starts the container: nothing is left behind when any part fails.
   */
  async make(req: ContainerRequest, log: Logger, lap: (phase: string, millis?: number) => void = () => undefined, hooks: MakeHooks = {}): Promise<MadeContainer> {
    const { config, engine } = this.d;
    const name = this.nameOf(req);
    const dir = req.for.role === 'job' ? this.jobDir(req.jobId) : path.join(this.jobDir(req.jobId), name);
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
    const lookingUp = Date.now();
    /** each look-up's own time, in the log line beside lookupMillis (theirs side by side) */
    const timed = <T>(name: string, p: Promise<T>): Promise<T> => p.then((v) => {
      lap(name, Date.now() - lookingUp);
      return v;
    });
    const userLookup = timed('userMillis', this.d.identities.lookup(req.uid, req.user));
    const [user, image, alloc, jobDevices] = await Promise.all([
      userLookup,
      userLookup.then(async (u) => {
        // a long pull is told to the user as it goes (images/pull-notice.ts)
        const notice = this.d.pullNotice?.(req.jobId, req.requestedImage || req.image);
        try {
          const ensured = await this.d.images.ensure(req.image, { user: { uid: req.uid, home: u.home }, ...(notice ? { onProgress: (p: PullProgress) => notice.progress(p) } : {}) });
          notice?.done(true);
          return ensured;
        } catch (err) {
          notice?.done(false);
          throw err;
        }
      }),
      timed('allocationMillis', Promise.resolve(this.d.allocations?.allocation(req.jobId, config.node))),
      this.d.jobDevices?.(req.jobId).catch((err: unknown) => {
        // Slurm gave GPUs this node's gres.conf does not name: the node's configuration
        throw new BerthError('NODE_CONFIG', `job ${req.jobId}: ${errorMessage(err)}; check gres.conf (berthd config gresConf: ${config.gresConf}) against slurm.conf's Gres= for ${config.node}`, { fault: 'node' });
      }),
    ]);
    lap('lookupMillis');
    const gids = [req.gid, ...user.groups.map((g) => g.gid)];
    const applied = applyUserOptions(req.jobId, req.options, { uid: req.uid, gids, home: user.home }, req.workDir, {
      site, ownPaths: config.ownPaths,
    });
    // the job's working directory is mounted only if its user could open it: dockerd mounts as root
    const warnings: string[] = [];
    const unreachable = alloc ? undefined : this.d.allocations?.unreachable?.(req.jobId);
    if (unreachable) {
      warnings.push(`berth: warning: job ${req.jobId} runs on ${config.node} without its GPUs and not bound to its CPUs: slurmctld could not be asked for its allocation when its container was made (${unreachable}); it keeps its CPU count and memory limit (resubmit if it needs its GPUs)`);
    }
    let workDir = req.workDir;
    if (workDir) {
      try {
        (this.d.reachable ?? reachablePath)(workDir, { uid: req.uid, gids }, 'the working directory');
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
      ...(req.for.role === 'step' ? { role: 'step', stepId: req.for.stepId } : {}),
    };
    // per-container passwd and group, bind-mounted read-only over the image's
    const base = await this.d.imageUserFiles.get(image.localRef);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const userFiles = { passwd: path.join(dir, 'passwd'), group: path.join(dir, 'group') };
    writeFileSync(userFiles.passwd, mergePasswd(base.passwd, { ...user, shell: '/bin/sh', gid: req.gid }), { mode: 0o644 });
    writeFileSync(userFiles.group, mergeGroup(base.group, user.name, user.groups), { mode: 0o644 });
    lap('filesMillis');
    // the GPU driver's libraries and tools the site lists, for jobs with GPUs (no NVIDIA Container Toolkit here)
    const gpuFiles = jobDevices?.gpus.files.length ? config.gpuHostFiles : [];
    const cpus = alloc?.cpus || req.cpus;
    // the job's CPUs in Linux's numbering, for berth-runc's gate (which must not wait on Slurm)
    let cpuset: JobCpuset | null | undefined;
    try {
      if (this.d.cpusetOf && this.d.allocations) cpuset = alloc?.cpuIds ? this.d.cpusetOf(alloc.cpuIds) : null;
    } catch (err) {
      throw new BerthError('NODE_CONFIG', `job ${req.jobId}: ${errorMessage(err)}`, { fault: 'node' });
    }
    const memoryBytes = alloc?.memoryBytes || req.memoryBytes;
    for (const m of applied.mounts) {
      const problem = isTmpfs(m) ? userTmpfsProblem(m, memoryBytes) : undefined;
      if (problem) throw new BerthError('MOUNT_REFUSED', `job ${req.jobId}: --container-mounts=${mountText(m)}: ${problem}`);
    }
    const spec = buildJobContainerSpec({
      identity,
      name,
      image: image.localRef,
      supplementaryGids: user.groups.map((g) => g.gid),
      cpus,
      memoryBytes,
      devices: jobDevices?.devices ?? expandDevices(config.rdmaDevices),
      ...(jobDevices ? { deviceEnv: jobDevices.gpus.env } : {}),
      mounts: site.mounts,
      initBinary: config.initBinary,
      memlockBytes: this.d.memlockBytes,
      userFiles,
      userMounts: applied.mounts,
      readOnly: applied.readOnly,
      workingDir: applied.workdir,
      hostFiles: [config.taskProlog, config.slurmdSpoolDir, ...gpuFiles].filter((f) => existsSync(f)),
      ...(req.options?.unshare?.length ? { unshare: req.options.unshare, hostname: os.hostname() } : {}),
    });
    if (this.d.admit) {
      const verdict = this.d.admit(policyView(spec.body), {
        user: user.name,
        groups: user.groups.map((g) => g.name),
        job: {
          jobId: req.jobId, uid: req.uid, gid: req.gid, cpus, memoryBytes,
          devices: [...spec.devices],
          // berth's own files (berth-init, the per-container passwd and group) and the job's directories
          mountPrefixes: [config.initBinary, config.taskProlog, config.slurmdSpoolDir, ...gpuFiles, dir, workDir, ...site.mounts.map((m) => m.source), ...applied.mountSources].filter(Boolean),
          groupIds: user.groups.map((g) => g.gid),
        },
      });
      if (!verdict.allow) {
        rmSync(dir, { recursive: true, force: true });
        throw new BerthError('POLICY_DENIED', `job ${req.jobId}: ${verdict.message}`);
      }
    }
    const body = this.d.seal ? { ...spec.body, Labels: this.d.seal.seal(name, spec.body.Labels as Record<string, string>) } : spec.body;
    lap('policyMillis');
    // what may be done while dockerd creates and starts the container (its work is lost if that fails)
    hooks.admitted?.(identity, alloc?.endTime);
    let containerId = '';
    let startLatencyMillis = 0;
    try {
      const createdAt = Date.now();
      // dockerd makes a missing WorkingDir itself when it creates the container, as root (in a
      // mounted host directory too), so --container-workdir is looked for in a container made
      // the same way but starting in /, which is removed before the real one is made
      if (applied.workdir) {
        const probeId = await this.createFresh(name, { ...body, WorkingDir: '/' }, log);
        let found: boolean;
        try {
          found = await engine.pathExists(probeId, applied.workdir);
        } finally {
          await engine.remove(probeId);
        }
        if (!found) {
          throw new BerthError('WORKDIR_MISSING', `job ${req.jobId}: --container-workdir ${applied.workdir}: No such file or directory in image ${req.requestedImage || image.ref.text} nor in a mount; give a directory the image has, or one you mount (--container-mounts)`);
        }
      }
      containerId = await this.createFresh(name, body, log);
      lap('createMillis');
      this.d.runtime?.owners.expect(containerId, {
        jobId: req.jobId, uid: req.uid, gid: req.gid, gids: user.groups.map((g) => g.gid), role: req.for.role,
        limits: { cpus, memoryBytes, pids: this.d.runtime.jobPidsLimit, ...(cpuset !== undefined ? { cpuset } : {}) },
        ...(jobDevices ? { devices: jobDevices.devices } : {}),
      });
      await engine.start(containerId);
      // an unnamed step's container, for its epilogue (a named one stays for the job's later steps)
      if (req.for.role === 'step' && name === stepContainerName(config.node, req.jobId, { stepId: req.for.stepId })) this.stepContainerIds.set(name, containerId);
      lap('startMillis');
      startLatencyMillis = Date.now() - createdAt;
      this.d.metrics?.containerStarted(startLatencyMillis / 1000);
    } catch (err) {
      if (containerId) await engine.remove(containerId).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      if (err instanceof BerthError) throw err;
      log.error('container could not be started', { error: engineMessage(err), role: req.for.role });
      // the paths the job's user chose or owns: berth-runc refusing one of them is the job's fault
      throw containerFailure(req.jobId, image.digestRef, err, [...applied.mounts.map((m) => m.source), workDir]);
    }
    for (const w of warnings) log.warn('job container made with a warning for its user', { warning: w });
    // the cpuset berth-runc's gate gave the job's cgroup as the container started
    const ranOn = this.d.runtime?.cgroups.supported ? this.d.runtime.cgroups.cpusetOf(req.jobId)?.cpus ?? '' : '';
    return { identity, containerId, name, dir, image, mounts: spec.mounts, devices: spec.devices, gpus: jobDevices?.gpus.files ?? [], cpuset: ranOn, endTime: alloc?.endTime, startLatencyMillis, warnings };
  }

  /** Undoes a make whose caller failed after it (the job's Docker access could not be granted). */
  async discard(made: Pick<MadeContainer, 'containerId' | 'dir'>): Promise<void> {
    await this.d.engine.remove(made.containerId).catch(() => undefined);
    rmSync(made.dir, { recursive: true, force: true });
  }

  /** Stops (grace period, then kill) and removes the containers, side by side. */
  async stopAndRemove(ids: readonly string[], log: Logger): Promise<void> {
    await Promise.all(ids.map(async (id) => {
      await this.d.engine.stop(id, this.d.config.stopGraceMs);
      await this.d.engine.remove(id);
      log.info('removed container', { container: id });
    }));
  }

  /**
   * The step's own container (not a named one: that stays for the job's later steps), removed
   * in the background: the step's tasks have ended and srun waits for the answer. Whether there
   * was one to remove. One this berthd made is removed by the id it kept (no look-up before the
   * answer); one made before berthd restarted is looked up by its name.
   */
  async removeStepContainer(jobId: string, stepId: string, log: Logger): Promise<boolean> {
    const name = stepContainerName(this.d.config.node, jobId, { stepId });
    const known = this.stepContainerIds.get(name);
    this.stepContainerIds.delete(name);
    const c = known ? { id: known } : await this.d.engine.inspect(name);
    if (!c) return false;
    const removal = (async () => {
      try {
        await this.stopAndRemove([c.id], log);
        rmSync(path.join(this.jobDir(jobId), name), { recursive: true, force: true });
      } catch (err) {
        log.warn('could not remove a step container; the job\'s epilogue removes it', { container: c.id, error: errorMessage(err) });
      }
    })();
    const pending = this.removing.get(jobId) ?? new Set<Promise<void>>();
    this.removing.set(jobId, pending);
    pending.add(removal);
    void removal.finally(() => {
      pending.delete(removal);
      if (pending.size === 0 && this.removing.get(jobId) === pending) this.removing.delete(jobId);
    });
    return true;
  }

  /** Resolves once the job's step containers being removed in the background are gone (or failed to go). */
  async removed(jobId: string): Promise<void> {
    await Promise.all([...(this.removing.get(jobId) ?? [])]);
  }

  /**
   * Every container of the job on this node — its job container, its step containers, those
   * its user made (found by their labels, and `also`, the ones recorded on the job) — stopped
   * and removed, after the step containers already being removed. The ids removed.
   */
  async removeJobContainers(jobId: string, also: readonly string[], log: Logger): Promise<string[]> {
    await this.removed(jobId);
    const labelled = (await listBerthContainers(this.d.engine, this.d.config.node, { jobId })).map((c) => c.id);
    const ids = [...new Set([...labelled, ...also])];
    await this.stopAndRemove(ids, log);
    return ids;
  }

  /** After the job's containers are gone: its files on this node, and what berth-runc's gate held for it. */
  forgetJob(jobId: string, log: Logger): void {
    rmSync(this.jobDir(jobId), { recursive: true, force: true });
    const prefix = stepContainerName(this.d.config.node, jobId, { stepId: '' });
    for (const name of this.stepContainerIds.keys()) if (name.startsWith(prefix)) this.stepContainerIds.delete(name);
    if (this.d.runtime) {
      this.d.runtime.owners.forgetJob(jobId);
      const left = this.d.runtime.cgroups.remove(jobId);
      if (left.length) log.warn('the job\'s cgroups still hold processes and stay', { cgroups: left });
    }
  }

  /** Records the image's use now, for the image GC's order; a failure is only logged. */
  async noteImageUse(ref: string, log: Logger): Promise<void> {
    if (!this.d.imageUses) return;
    try {
      const id = await this.d.images.imageId(ref);
      if (id) this.d.imageUses.used(id);
    } catch (err) {
      log.warn('could not record the image use for the image GC', { image: ref, error: errorMessage(err) });
    }
  }

  /** A container left under the name (a failed or interrupted earlier prologue) is removed. */
  /**
   * Creates the container NAME; a stale one left under that name by an earlier prologue (dockerd
   * answers 409) is removed first and the create asked again. Asking dockerd for the name before
   * every create cost a round trip (through the AuthZ plugin) on every prologue.
   */
  private async createFresh(name: string, body: Record<string, unknown>, log: Logger): Promise<string> {
    try {
      return await this.d.engine.create({ name, body });
    } catch (err) {
      if (engineStatus(err) !== 409) throw err;
    }
    await this.removeStale(name, log);
    return this.d.engine.create({ name, body });
  }

  private async removeStale(name: string, log: Logger): Promise<void> {
    const c = await this.d.engine.inspect(name);
    if (!c) return;
    log.warn('removing a stale container left by an earlier prologue', { container: c.id, state: c.state });
    await this.d.engine.remove(c.id);
  }
}
