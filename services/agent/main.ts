#!/usr/bin/env node
// berthd: the per-node agent. Builds config, logger, Docker client, stores and schedules,
// passes them through constructors, recovers the job table and serves the sockets.
import { execFile } from 'node:child_process';
import path from 'node:path';
import cron from 'node-cron';
import { AGENT_USAGE, type AgentArgs, parseAgentArgs } from './agent-args';
import { UnmungeVerifier } from '../shared/munge';
import { errorMessage } from '../shared/errors';
import { AccountingLog } from './accounting/accounting-log';
import { LABEL } from './containers/labels';
import { AgentMetrics } from './metrics/agent-metrics';
import { startMetricsServer } from './metrics/metrics-server';
import { CallerAuthenticator } from './auth/caller';
import { ConfigError, dockerSocketPath, loadConfig, loadRemoteTls, type RemoteTls } from './config';
import { DrainStore } from './admin/drain-store';
import { listManagedContainers } from './admin/managed-containers';
import { nodeStatus } from './admin/node-status';
import { checkDockerRuntime, checkNode, NodeCheck } from './admin/node-check';
import { SubmitChecker } from './submit/submit-checker';
import { loadSiteRules, type SiteRules, SiteRulesError, siteRulesFileHash } from '../shared/site-rules';
import { RemoteAccessPolicy } from './auth/remote-access';
import { ImageUserFilesCache } from './containers/image-user-files';
import { nodeMemlock } from './containers/memlock';
import { DockerodeEngine } from './docker/dockerode-engine';
import { reconcileJobs, SqueueJobSource } from './housekeeping/orphans';
import { pullNotice } from './images/pull-notice';
import { retryReconcile } from './housekeeping/reconcile-retry';
import { ensureSpoolDir, epilogSpoolDir } from '../shared/epilog-spool';
import { ImageCache } from './housekeeping/image-cache';
import { ImageBudget } from './images/image-budget';
import { FileImageUseLog } from './images/image-use-log';
import { CachingIdentityResolver, NssIdentityResolver } from './identity/nss';
import { ImageService } from './images/image-service';
import { FileImageAccess } from './images/image-access';
import { ContainerSaver } from './images/container-save';
import { CredentialStore } from './images/credential-store';
import { parseDockerConfig, readPrivateFile } from '../shared/images/credentials';
import { RegistryClient } from '../shared/images/registry-client';
import { JobService } from './jobs/job-service';
import { StepLedger } from './jobs/step-ledger';
import { ContainerFactory } from './containers/container-factory';
import type { SitePolicy as SitePolicyType } from './policy/site-policy';
import { ContainerSeal } from './containers/seal';
import { takeNodeLock } from './node-lock';
import { JobCgroups, type JobCpuset } from './runtime/job-cgroups';
import { CpuTopology } from './runtime/cpu-topology';
import { JobDevices } from './devices/job-devices';
import { within } from '../shared/within';
import { readGresConf } from './devices/gpus';
import { ContainerOwners, RuntimeGate } from './runtime/runtime-gate';
import { JobTable } from './jobs/job-table';
import { ScontrolAllocationSource } from './jobs/slurm-allocation';
import { Lifecycle } from './lifecycle';
import { createLogger } from './logger';
import { realHostPath } from './policy/host-paths';
import { SitePolicy } from './policy/site-policy';
import { type PolicyPort, type PreparedDockerAccess, prepareDockerAccess, startAuthzPlugin } from './authz/setup';
import { startServers } from './server/grpc-servers';
import { freezerRootFor, SlurmStepCgroups } from './steps/slurm-step-cgroup';
import { StepRunner } from './steps/step-runner';
import { StepContainers } from './steps/step-containers';
import { TaskFiles } from './steps/task-files';
import { StepSpool } from './steps/step-spool';
import { remoteRoles } from './server/method-table';
import { agentFaultsDir, agentJobsStateDir, agentStepSpoolDir, agentTasksDir } from '../shared/paths';
import { JobFaults } from './jobs/job-faults';
import { AGENT_VERSION } from '../shared/version';

async function main(): Promise<void> {
  let argv: AgentArgs;
  try {
    const asked = parseAgentArgs(process.argv.slice(2));
    if ('help' in asked) {
      console.log(AGENT_USAGE);
      return;
    }
    if ('version' in asked) {
      console.log(AGENT_VERSION);
      return;
    }
    argv = asked.args;
  } catch (err) {
    console.error(`berthd: ${errorMessage(err)}`);
    process.exitCode = 2;
    return;
  }

  const startedAt = new Date();
  let config;
  let remoteTls: RemoteTls | undefined;
  let drain: DrainStore;
  // the site rules (site mounts, users' mounts, registries), the file berth submit-check reads too
  let siteRules: SiteRules;
  try {
    config = loadConfig(argv.config, {
      node: argv.node, runDir: argv['run-dir'], stateDir: argv['state-dir'], dockerHost: argv['docker-host'],
      accountingFile: argv['accounting-file'], logFile: argv['log-file'], logLevel: argv['log-level'], initBinary: argv['init-binary'],
    });
    remoteTls = loadRemoteTls(config);
    siteRules = loadSiteRules(config.siteRules);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof SiteRulesError) {
      process.stderr.write(`berthd: bad configuration:\n${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // before any socket, file or container is touched: one berthd per node
  let releaseLock: () => void;
  try {
    releaseLock = takeNodeLock(config.stateDir, config.node);
  } catch (err) {
    process.stderr.write(`berthd: ${errorMessage(err)}\n`);
    process.exit(2);
  }
  process.on('exit', () => releaseLock());
  try {
    drain = new DrainStore(config.stateDir);
  } catch (err) {
    process.stderr.write(`berthd: ${errorMessage(err)}\n`);
    process.exit(2);
  }
  // where epilogs that could not reach berthd leave their records (shared/epilog-spool.ts)
  const spoolDir = epilogSpoolDir(config.runDir, config.node);
  try {
    ensureSpoolDir(spoolDir);
  } catch (err) {
    process.stderr.write(`berthd: ${errorMessage(err)}\n`);
    process.exit(2);
  }

  const log = createLogger(config.logLevel, config.logFile, config.node);
  log.info('site rules', { file: siteRules.file, sha256: siteRules.sha256, mounts: siteRules.mounts.length, userMounts: siteRules.userMounts.enabled, registries: siteRules.registries });
  // dockerd's data-root, once dockerd has answered (the node check watches its free space, the runtime gate pins under it)
  let dataRoot: string | undefined;
  const nodeCheck = new NodeCheck({
    node: config.node, drain, log: log.child({ component: 'node-check' }),
    check: () => checkNode({ configFile: argv.config ?? '', config: config!, rules: siteRules, rulesOnDisk: siteRulesFileHash(siteRules.file),
      engineDisk: dataRoot === undefined ? undefined : { dataRoot, highPercent: config!.imageGc.highPercent } }),
  });
  const lifecycle = new Lifecycle();
  const engine = new DockerodeEngine(dockerSocketPath(config));
  // built only when the endpoint is on: the services then count into it
  const metrics = config.metrics ? new AgentMetrics(config.node) : undefined;
  const identities = new CachingIdentityResolver(new NssIdentityResolver());
  const table = new JobTable(config.stateDir);
  await checkSiteCredentials(config.registryCredentialsFile);
  const imageAccess = new FileImageAccess(config.stateDir);
  const imageUses = new FileImageUseLog(config.stateDir);
  const credentials = new CredentialStore(config.registryCredentialsFile);
  const registry = new RegistryClient();
  const budgetBytes = config.imageGc.budgetBytes;
  const imageBudget = budgetBytes === undefined ? undefined
    : new ImageBudget({ engine, uses: imageUses, sizer: registry, budgetBytes, log: log.child({ component: 'image-budget' }) });
  const images = new ImageService(engine, registry, { timeoutMs: config.pullTimeoutMs, inactivityMs: config.pullInactivityMs }, log, config.mirrors,
    imageAccess, credentials, metrics, imageBudget);
  const memlock = nodeMemlock(config.memlock === 'unlimited' ? -1 : config.memlock);
  if (memlock.clampedFrom !== undefined) {
    log.warn('job containers get this node\'s memlock hard limit: berthd lacks CAP_SYS_RESOURCE to raise it (RDMA may need unlimited)', { memlockBytes: memlock.bytes, configured: config.memlock });
  }
  const imageUserFiles = new ImageUserFilesCache(engine, config.node);
  // Docker access for job users (config `authz`): the site policy, the node CA, dockerd's TLS files
  let policy: PolicyPort | undefined;
  let sitePolicyFile: SitePolicyType | undefined;
  let prepared: PreparedDockerAccess | undefined;
  // a mirror serves the same digests as the registry it mirrors
  const policyRegistries = (r: SiteRules): string[] => [...r.registries, ...Object.entries(config.mirrors).filter(([reg]) => r.registries.includes(reg)).flatMap(([, m]) => m)];
  if (config.authz) {
    try {
      const site = new SitePolicy(config.authz.policyFile, log, {
        registries: policyRegistries(siteRules),
        resolvePath: realHostPath,
        // never mountable into a container: dockerd's socket, berth's sockets and job certificates, its CA
        protectedPaths: [dockerSocketPath(config), config.runDir, config.stateDir],
        site: {
          runtime: config.authz.runtime, logDrivers: config.authz.logDrivers, logMaxSizeBytes: config.authz.logMaxSizeBytes,
          logMaxFiles: config.authz.logMaxFiles, allowSwap: config.authz.allowSwap, pidsLimit: config.authz.pidsLimit,
        },
      });
      site.load();
      site.watch();
      policy = site;
      sitePolicyFile = site;
    } catch (err) {
      process.stderr.write(`berthd: bad policy file ${config.authz.policyFile}:\n${errorMessage(err)}\n`);
      process.exit(2);
    }
    prepared = await prepareDockerAccess(config, log);
  }
  const sitePolicy = policy;
  const accounting = new AccountingLog(config.accountingFile, config.accountingRotation);
  const seal = ContainerSeal.loadOrCreate(config.stateDir);
  // berth-runc's gate: every container of a job runs in the job's cgroup, its binds pinned as the user
  const cgroups = new JobCgroups(config.node);
  const allocations = new ScontrolAllocationSource();
  const topology = new CpuTopology();
  const jobDevices = new JobDevices({ node: config.node, rdmaDevices: config.rdmaDevices, allocations, gresConf: readGresConf(config.gresConf) });
  /** the job's CPUs on this node as Slurm gave them, in Linux's numbering */
  const machineCpuset = (cpuIds: string): JobCpuset => {
    const cpus = topology.machineCpus(cpuIds);
    return { cpus, mems: topology.memoryNodes(cpus) };
  };
  const slurmCpuset = async (jobId: string): Promise<JobCpuset | undefined> => {
    const a = await allocations.allocation(jobId, config.node);
    return a?.cpuIds ? machineCpuset(a.cpuIds) : undefined;
  };
  const owners = new ContainerOwners(async (id) => {
    const job = table.list().find((j) => j.containerId === id || j.userContainers.includes(id));
    if (!job) return undefined;
    const user = await identities.lookup(job.uid);
    return { jobId: job.jobId, uid: job.uid, gid: job.gid, gids: user.groups.map((g) => g.gid), role: job.containerId === id ? 'job' : 'user', limits: { cpus: 0, memoryBytes: 0, pids: config.jobPidsLimit } };
  });
  const nodeRun = path.join(config.runDir, config.node);
  const runtimeGate = new RuntimeGate({
    socket: path.join(nodeRun, 'runtime.sock'), node: config.node, owners, cgroups, dataRoot: () => dataRoot,
    jobCpuset: slurmCpuset,
    berthFiles: [config.initBinary, agentJobsStateDir(config.stateDir), config.taskProlog, config.slurmdSpoolDir],
    jobDevices: async (jobId) => (await jobDevices.of(jobId)).devices, nodeDevices: () => jobDevices.nodeDevices(), pinRoot: path.join(nodeRun, 'pins'), log: log.child({ component: 'runtime-gate' }),
  });
  await runtimeGate.start();
  // what every job needs from this node, now that the runtime gate's socket is there
  nodeCheck.run(true);
  const checkRuntime = async (): Promise<void> => {
    nodeCheck.setRuntimeProblems(checkDockerRuntime({ ...config, configFile: argv.config }, await engine.runtimes()));
  };
  let authzAsked: (() => Promise<void>) | undefined;
  // where a user reads about their job: scontrol show job, sacct -o AdminComment
  const tellUser = (jobId: string, text: string) => new Promise<void>((resolve, reject) => {
    execFile('scontrol', ['update', `jobid=${jobId}`, `AdminComment=${text.slice(0, 1000)}`], { timeout: 10_000 }, (err) => (err ? reject(err) : resolve()));
  });
  const pullNotices = (jobId: string, image: string) => pullNotice((text) => {
    tellUser(jobId, text).catch((err: unknown) => log.warn('could not tell the user how their image pull goes', { job: jobId, error: errorMessage(err) }));
  }, { image, node: config.node });
  const factory = new ContainerFactory({ pullNotice: pullNotices, config, engine, images, imageUserFiles, identities, imageUses, log, memlockBytes: memlock.bytes, allocations, jobDevices: (jobId) => jobDevices.of(jobId), cpusetOf: (ids) => machineCpuset(ids),
    metrics, seal, siteRules: () => siteRules,
    // what every job needs from the node, and that dockerd still asks berth's AuthZ plugin (authz/authz-probe.ts)
    nodeReady: async (jobId) => {
      nodeCheck.assertReady(jobId);
      await authzAsked?.();
    },
    runtime: { owners, cgroups, jobPidsLimit: config.jobPidsLimit },
    admit: sitePolicy && ((body, ctx) => {
      const v = sitePolicy.admit('container_create', body, ctx);
      return { allow: v.allow, message: sitePolicy.formatDenial(v) };
    }),
  });
  const ledger = new StepLedger({ table, log, usage: engine, metrics });
  const taskFiles = new TaskFiles(agentTasksDir(config.runDir, config.node));
  const stepContainers = new StepContainers({ factory, ledger, table, engine, files: taskFiles, node: config.node, log });
  // the steps that joined their job's container without asking berthd leave their records here
  const stepSpool = new StepSpool({ dir: agentStepSpoolDir(config.runDir, config.node), ledger, table, log: log.child({ component: 'step-spool' }) });
  const jobTasks = {
    removeJob: (jobId: string) => taskFiles.removeJob(jobId),
    publishJob: (jobId: string) => stepContainers.publishJob(jobId),
    withdrawJob: (jobId: string) => stepContainers.withdrawJob(jobId),
  };
  const jobs = new JobService({ config, engine, factory, ledger, table, accounting, log, seal, volumes: engine, tasks: jobTasks, stepSpool,
    faults: new JobFaults(agentFaultsDir(config.runDir, config.node)),
    tellUser,
    saver: new ContainerSaver({ engine, ownLogin: (user) => credentials.ownLogin(user), homeOf: async (uid, user) => (await identities.lookup(uid, user)).home,
      siteRules: () => siteRules, push: { timeoutMs: config.pullTimeoutMs, inactivityMs: config.pullInactivityMs }, log }),
    dockerAccess: prepared?.dockerAccess,
  });
  const imageCache = new ImageCache(engine, imageUses, ImageCache.diskOf(() => engine.dataRoot()), {
    highPercent: config.imageGc.highPercent, lowPercent: config.imageGc.lowPercent, minAgeMs: config.imageGc.minAgeMs, dryRun: config.imageGc.dryRun, budgetBytes,
  }, log.child({ component: 'image-gc' }));
  const taskRoot = (t: string | undefined): string | undefined => (t ? freezerRootFor(t, config.node) : undefined);
  const slurmSteps = new SlurmStepCgroups({
    freezerRoot: freezerRootFor(config.slurmFreezerCgroup, config.node),
    taskRoots: { memory: taskRoot(config.slurmTaskCgroups.memory), cpuacct: taskRoot(config.slurmTaskCgroups.cpuacct) },
    signal: (pid, sig) => process.kill(pid, sig), log,
  });
  const steps = new StepRunner(engine, ledger, log, siteRules.mounts.map((m) => m.target), undefined,
    prepared ? (jobId) => prepared.dockerAccess.env(jobId) : undefined, slurmSteps);
  const auth = new CallerAuthenticator(new UnmungeVerifier('unmunge', config.mungeMaxAgeMs),
    config.remoteAccess && new RemoteAccessPolicy(config.remoteAccess.clients, remoteRoles()));
  const containers = () => listManagedContainers(engine, config.node, jobs.list());
  const reconcile = (when: 'start' | 'sweep') => reconcileJobs({
    jobs, source: new SqueueJobSource(), node: config.node, graceMs: when === 'start' ? 0 : config.orphanGraceMs, dryRun: false,
    log: log.child({ component: when === 'start' ? 'reconcile' : 'orphan-sweep' }), engine, seal, spoolDir, when,
    cgroupJobs: cgroups.supported ? () => cgroups.jobs() : undefined,
  });

  // the AuthZ plugin before berthd's first call to dockerd: dockerd asks it about every request
  const authzPlugin = prepared && policy && config.authz
    ? await startAuthzPlugin({ config: { ...config, authz: config.authz }, ca: prepared.ca, policy, engine, identities, jobs, log, seal,
      expectStart: (id, owner) => owners.expect(id, { ...owner, limits: { ...owner.limits, pids: config.jobPidsLimit } }),
      images: { access: imageAccess, repoDigests: (ref) => engine.imageRepoDigests(ref) }, metrics,
      siteMountSources: () => siteRules.mounts.map((m) => m.source), pingWithQuery: (q) => engine.pingWithQuery(q),
      // a user's docker call waits on slurmctld at most 2 s: a job's first container, or slurmctld away
      jobCpuset: async (jobId) => cgroups.cpusetOf(jobId) ?? within(slurmCpuset(jobId), 2_000),
      jobDevices: async (jobId) => (await within(jobDevices.of(jobId), 2_000))?.devices ?? jobDevices.nodeDevices() })
    : undefined;
  authzAsked = authzPlugin?.checkAsked;
  if (authzPlugin && prepared) prepared.dockerAccess.useDefaults(authzPlugin.containerDefaults);
  const servers = await startServers(config.runDir, {
    jobs, steps, auth, identities, node: config.node, stopGraceMs: config.stopGraceMs, lifecycle, log,
    submitCheck: new SubmitChecker({ identities, siteRules: () => siteRules }),
    dockerOf: prepared ? (jobId) => prepared.dockerAccess.connection(jobId) : undefined,
    imageCache,
    images,
    stepContainers,
    accounting,
    metrics,
    drain,
    containers,
    status: () => nodeStatus({
      node: config.node, version: AGENT_VERSION, startedAt, lifecycle: { phase: lifecycle.phase, detail: lifecycle.reason }, drain: () => drain.get(),
      jobs: () => jobs.list(), ping: () => engine.ping(), containers, images: () => imageCache.list(),
      siteRules: () => siteRules, nodeProblems: () => nodeCheck.run(),
    }),
  }, lifecycle, remoteTls);
  log.info('berthd listening', { version: AGENT_VERSION, sockets: servers.sockets, tcp: servers.tcp, docker: config.dockerHost });
  if (drain.get().drained) log.warn('this node is drained for container jobs (berth resume ends it)', { ...drain.get() });
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  if (metrics && config.metrics) {
    metrics.watch({
      jobsRunning: () => jobs.list().filter((j) => j.state === 'RUNNING').length,
      containersRunning: async () => (await engine.listByLabel(LABEL.node, config.node)).filter((c) => c.state === 'running').length,
      imageCacheBytes: async () => (await engine.listImages()).reduce((sum, i) => sum + i.sizeBytes, 0),
    });
    try {
      metricsServer = await startMetricsServer(metrics, config.metrics.listen, (err) => log.warn('metrics scrape failed', { error: errorMessage(err) }));
    } catch (err) {
      process.stderr.write(`berthd: ${errorMessage(err)}; change metrics.listen in the config, or remove the metrics section\n`);
      process.exit(2);
    }
    log.info('serving Prometheus metrics', { url: `http://${metricsServer.address}/metrics` });
  }

  // recover: retry until dockerd answers, serving health NOT_SERVING meanwhile
  for (let attempt = 1; ; attempt++) {
    try {
      await engine.ping();
      dataRoot = await engine.dataRoot();
      await checkRuntime();
      await jobs.recover();
      // the running jobs' containers for the steps that join them as they are; the steps'
      // records written while berthd was away, before anything of those jobs is ended
      for (const j of jobs.list()) await stepContainers.publishJob(j.jobId);
      stepSpool.watch();
      const spooled = stepSpool.drain();
      if (spooled) log.info('read the records native steps left while berthd was away', { records: spooled });
      // the running jobs' Docker endpoints, as they were before the restart
      for (const j of jobs.list()) {
        if (j.state !== 'RUNNING') continue;
        await prepared?.dockerAccess.open(j).catch((err: unknown) => log.warn('could not reopen the job\'s Docker endpoint', { job: j.jobId, error: errorMessage(err) }));
      }
      break;
    } catch (err) {
      lifecycle.set('recovering', `dockerd at ${config.dockerHost} not answering: ${errorMessage(err)}`);
      log.warn('waiting for dockerd', { attempt, error: errorMessage(err) });
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)));
    }
  }
  // before serving (hooks retry meanwhile): end at once the jobs that ended while berthd was away
  lifecycle.set('recovering', 'ending jobs Slurm no longer runs here');
  const reconcileBegan = Date.now();
  let startRetry = false;
  try {
    const r = await reconcile('start');
    log.info('reconciled with Slurm', { millis: Date.now() - reconcileBegan, jobs: r.checked, ended: r.removed, spooledEpilogs: r.settled, ...(r.skipped ? { skipped: r.skipped } : {}) });
    if (r.skipped) startRetry = true;
  } catch (err) {
    log.error('could not reconcile with Slurm at start; trying again shortly', { error: errorMessage(err) });
    startRetry = true;
  }
  // Slurm not answering (slurmctld down or still starting, as after a reboot): ask again soon,
  // backing off, rather than leave ended jobs' containers running until the periodic sweep
  if (startRetry) retryReconcile(() => reconcile('start'), log.child({ component: 'reconcile' }), () => stopping);
  lifecycle.set('serving');
  log.info('berthd serving');

  const gcTask = cron.schedule(config.imageGc.schedule, () => {
    imageCache.collect().catch((err: unknown) => log.error('image GC failed', { error: errorMessage(err) }));
  }, { noOverlap: true });

  const orphanTask = cron.schedule(config.orphanSchedule, () => {
    void reconcile('sweep').catch((err: unknown) => log.error('orphan sweep failed', { error: errorMessage(err) }));
  }, { noOverlap: true });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('berthd stopping; job containers keep running and are recovered at the next start', { signal });
    lifecycle.set('draining', signal);
    void orphanTask.stop();
    void gcTask.stop();
    policy?.close();
    stepSpool.close();
    void Promise.all([servers.shutdown(5000), authzPlugin?.close(), metricsServer?.close(), runtimeGate.close()]).then(() => {
      log.end();
      setTimeout(() => process.exit(0), 100).unref();
    });
  };
  process.on('SIGHUP', () => {
    try {
      const next = loadSiteRules(config.siteRules);
      if (next.sha256 !== siteRules.sha256) log.info('SIGHUP: site rules reloaded', { file: next.file, sha256: next.sha256, was: siteRules.sha256 });
      siteRules = next;
      sitePolicyFile?.setRegistries(policyRegistries(siteRules));
    } catch (err) {
      log.error('SIGHUP: the site rules file is bad; the rules read before stay in force', { file: config.siteRules, sha256: siteRules.sha256, error: errorMessage(err) });
    }
    if (policy) log.info('SIGHUP: reloading the policy file', { reloaded: policy.reload() });
    nodeCheck.run(true);
    checkRuntime().catch((err: unknown) => log.warn('node check: dockerd did not say which runtimes it has', { error: errorMessage(err) }));
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`berthd: ${errorMessage(err)}\n`);
  process.exit(1);
});

/** A missing or unsafe site credentials file stops berthd at start, with the reason. */
async function checkSiteCredentials(file: string | undefined): Promise<void> {
  if (!file) return;
  try {
    const got = await readPrivateFile(file, 0);
    if (!got) throw new Error(`registryCredentialsFile ${file} does not exist; create it with: docker --config ${path.dirname(file)} login REGISTRY (as root), or remove the key`);
    if (got.unsafe) throw got.unsafe;
    parseDockerConfig(got.text, file);
  } catch (err) {
    process.stderr.write(`berthd: bad configuration:\n${errorMessage(err)}\n`);
    process.exit(2);
  }
}
