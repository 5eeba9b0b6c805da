// Turns Docker access for job users on, when the config has an `authz` section: the node
// CA and dockerd's TLS files, the AuthZ plugin on its socket (before berthd first talks to
// dockerd, which asks the plugin about every request), per-job certificates, the audit log.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type ContainerDefaults, DEVICE_ENV_NAMES } from './container-defaults';
import type { ImageAccess } from '../images/image-access';
import { privateImageRefusal } from '../images/private-image-gate';
import type { DockerRequest } from '../docker-request/request';
import { agentSockets } from '../../shared/paths';
import type { AgentConfig } from '../config';
import { LABEL } from '../containers/labels';
import type { ContainerEngine, ExecEngine, StateEngine } from '../docker/engine';
import type { ContainerSeal } from '../containers/seal';
import { existsSync } from 'node:fs';
import { EffectGate } from './effect-gate';
import type { IdentityResolver } from '../identity/nss';
import type { JobRecord } from '../jobs/job-record';
import type { Logger } from '../logger';
import { AuditLog } from './audit-log';
import { Authorizer, type JobPolicyContext, type MappedAction, type PolicyVerdict } from './authorizer';
import type { NodeCertificateAuthority } from '../certs/node-ca';
import { DockerAccess } from './docker-access';
import { AuthzProbe } from './authz-probe';
import { startPluginServer } from './plugin-server';

/** What the AuthZ plugin and berthd's own checks need from the policy module (policy/site-policy.ts). */
export interface PolicyPort {
  mapAction(method: string, uri: string): MappedAction | undefined;
  /** a request through dockerd, decoded once */
  decide(request: DockerRequest, ctx: JobPolicyContext): PolicyVerdict;
  formatDenial(v: PolicyVerdict): string;
  /** a container as dockerd stored it, judged before it starts */
  judgeStored(body: Record<string, unknown>, ctx: JobPolicyContext, name: string): PolicyVerdict;
  /** berthd's own requests (its job containers), judged by the same policies */
  admit(action: string, body: unknown, ctx: JobPolicyContext): PolicyVerdict;
  /** rereads the policy file; false (and the old policy kept) when the new one is bad */
  reload(): boolean;
  close(): void;
}

export interface PreparedDockerAccess {
  ca: NodeCertificateAuthority;
  dockerAccess: DockerAccess;
}

/** The node CA, dockerd's TLS files and the per-job certificate issuer; undefined when Docker access is off. */
export async function prepareDockerAccess(config: AgentConfig, log: Logger): Promise<PreparedDockerAccess | undefined> {
  if (!config.authz) return undefined;
  // the X.509 library costs 45 ms and 14 MB: load it only where Docker access is on
  const { NodeCertificateAuthority: Ca } = await import('../certs/node-ca');
  const ca = await Ca.loadOrCreate(path.join(config.stateDir, 'ca'), config.node);
  await DockerAccess.writeServerFiles(ca, path.join(config.stateDir, 'tls'), config.node);
  const dockerAccess = new DockerAccess(ca, path.join(nodeRunDir(config), 'jobs'), config.authz.dockerTlsAddress, log.child({ component: 'authz' }));
  // dockerd's TLS address, for job users who talk to it directly with their job's certificate
  writeFileSync(path.join(nodeRunDir(config), 'docker-host'), `${dockerAccess.connection('').tls}\n`, { mode: 0o644 });
  return { ca, dockerAccess };
}

function nodeRunDir(config: AgentConfig): string {
  return path.dirname(agentSockets(config.runDir, config.node).admin);
}

/** Serves the AuthZ plugin; start it before berthd's first call to dockerd, which consults it. */
export async function startAuthzPlugin(opts: {
  config: AgentConfig & { authz: NonNullable<AgentConfig['authz']> };
  ca: NodeCertificateAuthority;
  policy: PolicyPort;
  engine: ContainerEngine & ExecEngine & StateEngine;
  identities: IdentityResolver;
  jobs: { get(jobId: string): JobRecord | undefined; list(): JobRecord[]; addUserContainer(jobId: string, containerId: string): void; addUserVolume(jobId: string, name: string): void };
  seal: ContainerSeal;
  /** tells berth-runc's gate whose container is about to start */
  expectStart?: (containerId: string, owner: { jobId: string; uid: number; gid: number; gids: number[]; role: 'user'; limits: { cpus: number; memoryBytes: number; pids: number; cpuset?: { cpus: string; mems: string } }; devices?: readonly string[] }) => void;
  /** private images (pulled with a user's own login) and the names a local image carries */
  images: { access: ImageAccess; repoDigests(ref: string): Promise<string[]> };
  metrics?: { authzDecision(allow: boolean): void };
  /** the host sources of the site mounts (site rules), which users' containers may bind too */
  siteMountSources?: () => readonly string[];
  /** the job's CPUs and memory nodes on this node, as its containers get them (runtime/job-cgroups.ts) */
  jobCpuset?: (jobId: string) => Promise<{ cpus: string; mems: string } | undefined>;
  /** the device nodes the job's containers may have (the node's RDMA devices and the job's GPUs) */
  jobDevices?: (jobId: string) => Promise<readonly string[]>;
  /** GET /_ping?NAME=VALUE to dockerd, for the check that dockerd asks this plugin at all (authz-probe.ts) */
  pingWithQuery?: (query: Record<string, string>) => Promise<void>;
  log: Logger;
}): Promise<{ close(): Promise<void>; checkAsked?: () => Promise<void>; containerDefaults: (jobId: string) => Promise<ContainerDefaults | undefined> }> {
  const { config, ca, engine, identities, jobs, policy } = opts;
  const authz = config.authz;
  const log = opts.log.child({ component: 'authz' });
  const runDir = nodeRunDir(config);

  const contextFor = async (job: JobRecord): Promise<JobPolicyContext> => {
    const [user, c, cpuset, devices] = await Promise.all([
      identities.lookup(job.uid), engine.inspect(job.containerId), opts.jobCpuset?.(job.jobId), opts.jobDevices?.(job.jobId).catch(() => undefined),
    ]);
    return {
      user: job.user,
      groups: user.groups.map((g) => g.name),
      job: {
        jobId: job.jobId,
        uid: job.uid,
        gid: job.gid,
        cpus: (c?.nanoCpus ?? 0) / 1e9,
        memoryBytes: c?.memoryBytes ?? 0,
        devices: devices ? [...devices] : c?.devices ?? [],
        mountPrefixes: [job.workDir, ...(opts.siteMountSources?.() ?? [])].filter(Boolean),
        ...(cpuset ? { cpuset } : {}),
        groupIds: user.groups.map((g) => g.gid),
        // a user's volumes serve all their running jobs on the node
        volumes: jobs.list().filter((j) => j.uid === job.uid && j.state === 'RUNNING').flatMap((j) => j.userVolumes ?? []),
      },
    };
  };

  const authorizer = new Authorizer({
    node: config.node,
    mapAction: (m, u) => policy.mapAction(m, u),
    decide: (request, ctx) => policy.decide(request, ctx),
    formatDenial: (v) => policy.formatDenial(v),
    jobFromCertificate: (pem) => ca.verifyJobCertificate(pem),
    jobs,
    contextFor,
    container: async (ref) => {
      const c = await engine.inspect(ref);
      if (!c) return undefined;
      return { id: c.id, jobId: c.labels[LABEL.node] === config.node ? c.labels[LABEL.jobId] : undefined };
    },
    execContainer: (id) => engine.execContainerId(id),
    imageRefusal: async (request, uid) => {
      const image = request.createImage;
      return image === undefined ? undefined : privateImageRefusal(image, uid, opts.images.access, opts.images.repoDigests);
    },
    minApiVersion: authz.minApiVersion,
    effects: new EffectGate({
      engine,
      judgeStored: (body, ctx, name) => policy.judgeStored(body, ctx, name),
      formatDenial: (v) => policy.formatDenial(v),
      // dockerd stores an unset cgroup namespace mode as the host's default: host on cgroup v1, private on v2
      daemon: { cgroupnsMode: existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'private' : 'host' },
      berthMade: (c) => c.labels[LABEL.node] === config.node && opts.seal.verify(c.name, c.labels),
      admitted: (id, ctx) => {
        const j = ctx.job;
        if (j) opts.expectStart?.(id, { jobId: j.jobId, uid: j.uid, gid: j.gid, gids: j.groupIds ?? [], role: 'user', limits: { cpus: j.cpus, memoryBytes: j.memoryBytes, pids: 0, ...(j.cpuset ? { cpuset: j.cpuset } : {}) }, devices: j.devices });
      },
      log,
    }),
    audit: new AuditLog(authz.auditFile),
    metrics: opts.metrics,
    log,
  });
  const probe = opts.pingWithQuery && new AuthzProbe(opts.pingWithQuery, { plugin: authz.pluginName, docker: config.dockerHost });
  const server = await startPluginServer({
    socket: path.join(runDir, 'authz.sock'),
    specFile: path.join(authz.pluginSpecDir, `${authz.pluginName}.spec`),
    authorizer,
    log,
    observe: probe ? (uri) => probe.observe(uri) : undefined,
  });
  // what the job's Docker endpoint fills into a user's create: the values the policy judges it by
  const containerDefaults = async (jobId: string): Promise<ContainerDefaults | undefined> => {
    const job = jobs.get(jobId);
    if (!job || job.state !== 'RUNNING' || !job.containerId) return undefined;
    const [ctx, c] = await Promise.all([contextFor(job), engine.inspect(job.containerId)]);
    const j = ctx.job;
    if (!j) return undefined;
    return {
      uid: job.uid, gid: job.gid, groupIds: j.groupIds ?? [], memoryBytes: j.memoryBytes, cpus: j.cpus, devices: j.devices ?? [],
      deviceEnv: (c?.env ?? []).filter((e) => DEVICE_ENV_NAMES.includes(e.slice(0, e.indexOf('=')))),
    };
  };
  return {
    containerDefaults,
    checkAsked: probe ? () => probe.check() : undefined,
    close: async () => {
      policy.close();
      await server.close();
    },
  };
}
