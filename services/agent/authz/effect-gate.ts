// Judges what dockerd made, not what the request said: before a job user's container starts
// (container_start, container_restart) berth inspects it as root and judges its stored state
// with the same policy as a create; a container that fails is refused and removed. Before an
// exec starts, the exec's stored user and privilege are checked; an update may only lower
// limits. Volumes: none with driver options, a named one only for the jobs of the user who
// created it.
import { cpuListWithin } from '../../shared/cpu-list';
import type { StateEngine, StoredContainer } from '../docker/engine';
import type { Logger } from '../logger';
import { BodyNumber, BodyObject } from '../docker-request/body';
import type { DockerRequest } from '../docker-request/request';
import type { Decision, PolicyContext } from '../policy/policy-types';
import { createBodyOfStored, type DaemonDefaults } from './stored-body';

export interface EffectGateDeps {
  engine: StateEngine & { remove(id: string): Promise<void> };
  judgeStored(body: Record<string, unknown>, ctx: PolicyContext, name: string): Decision;
  formatDenial(d: Decision): string;
  daemon: DaemonDefaults;
  /** true for the job and step containers berthd made (and judged) itself: sealed (containers/seal.ts) */
  berthMade(c: StoredContainer): boolean;
  /** a user's container passed: it is the job's, about to be created by the runtime (berth-runc's gate) */
  admitted?(containerId: string, ctx: PolicyContext): void;
  log: Logger;
}

/** Limits container_update may lower but never raise (0 means "unchanged" to dockerd). */
const UPDATE_LIMITS = ['Memory', 'MemorySwap', 'MemoryReservation', 'NanoCpus', 'CpuQuota', 'CpuShares', 'PidsLimit', 'BlkioWeight', 'KernelMemory', 'KernelMemoryTCP', 'CpuRealtimeRuntime'];

export class EffectGate {
  constructor(private readonly d: EffectGateDeps) {}

  /** undefined: dockerd may go on; else why not (the message the user gets). */
  async check(request: DockerRequest, ctx: PolicyContext): Promise<string | undefined> {
    const mapped = request.mapped;
    if (!mapped) return undefined;
    switch (mapped.action) {
      case 'container_start':
      case 'container_restart':
        return mapped.containerId ? this.beforeStart(mapped.containerId, ctx) : undefined;
      case 'exec_start':
        return mapped.execId ? this.beforeExec(mapped.execId, ctx) : undefined;
      case 'container_update':
        return mapped.containerId ? this.update(mapped.containerId, request, ctx) : undefined;
      case 'volume_create':
        return this.volumeCreate(request, ctx);
      case 'container_rename': {
        // berth finds its containers by their sealed names: a job user may not move them
        const c = mapped.containerId ? await this.d.engine.storedContainer(mapped.containerId) : undefined;
        return c && this.d.berthMade(c) ? `berth denies container_rename: ${c.name} is berth's container for your job; its name is berth's` : undefined;
      }
      default:
        return undefined;
    }
  }

  private async beforeStart(ref: string, ctx: PolicyContext): Promise<string | undefined> {
    const c = await this.d.engine.storedContainer(ref);
    if (!c || this.d.berthMade(c)) return undefined;
    const problems: string[] = [];
    const verdict = this.d.judgeStored(createBodyOfStored(c, this.d.daemon), ctx, c.name);
    if (!verdict.allow) problems.push(this.d.formatDenial(verdict));
    problems.push(...(await this.volumeProblems(c, ctx)));
    if (problems.length === 0) {
      this.d.admitted?.(c.id, ctx);
      return undefined;
    }
    try {
      await this.d.engine.remove(c.id);
    } catch (err) {
      this.d.log.error('could not remove a container refused at start', { container: c.id, error: String(err) });
    }
    this.d.log.warn('refused to start a job user\'s container and removed it', { container: c.id, name: c.name, user: ctx.user, job: ctx.job?.jobId, problems });
    return `berth refused to start container ${c.name} and removed it: as dockerd made it, ${problems.join('; ')}`;
  }

  private async volumeProblems(c: StoredContainer, ctx: PolicyContext): Promise<string[]> {
    const out: string[] = [];
    const owned = new Set(ctx.job?.volumes ?? []);
    for (const m of c.mounts) {
      if (m.type !== 'volume' || !m.name) continue;
      const v = await this.d.engine.volume(m.name);
      if (!v) continue;
      if (v.driver !== 'local') out.push(`volume ${m.name} uses driver ${v.driver}: only local volumes are allowed`);
      if (Object.keys(v.options).length) out.push(`volume ${m.name} has driver options (${Object.keys(v.options).join(', ')}), which can mount any host path: not allowed`);
      // a volume named in the container's own settings must be the user's; anonymous ones were made for this container
      if (namedIn(c, m.name) && !owned.has(m.name)) out.push(`volume ${m.name} is not one your job created`);
    }
    return out;
  }

  private async beforeExec(execId: string, ctx: PolicyContext): Promise<string | undefined> {
    const job = ctx.job;
    if (!job) return undefined;
    const e = await this.d.engine.storedExec(execId);
    if (!e) return undefined;
    if (e.privileged) return `berth refused to start exec ${execId}: as dockerd made it, it is privileged`;
    let user = e.user;
    if (user === '') user = String((await this.d.engine.storedContainer(e.containerId))?.config.User ?? '');
    const want = `${job.uid}:${job.gid}`;
    if (user !== want) return `berth refused to start exec ${execId}: as dockerd made it, it would run as '${user || 'the image\'s user'}', not as you (${want}): give --user ${want} or leave it out`;
    return undefined;
  }

  private async update(ref: string, request: DockerRequest, ctx: PolicyContext): Promise<string | undefined> {
    if (request.bodyText === undefined) return undefined; // the policy has denied an update without a body
    const c = await this.d.engine.storedContainer(ref);
    if (!c) return undefined;
    const body = request.body;
    if (!(body instanceof BodyObject)) return undefined;
    const problems: string[] = [];
    for (const field of UPDATE_LIMITS) {
      const given = body.get(field)?.value;
      if (!(given instanceof BodyNumber) || given.value === 0) continue;
      const current = Number(c.hostConfig[field] ?? 0);
      if (given.value < 0) problems.push(`${field}=${given.raw} would remove the limit`);
      else if (current > 0 && given.value > current) problems.push(`${field}=${given.raw} would raise the container's limit of ${current}`);
    }
    // the CPUs and memory nodes stay within the job's (the kernel refuses more than the job's cgroup has, too)
    for (const [field, key] of [['CpusetCpus', 'cpus'], ['CpusetMems', 'mems']] as const) {
      const given = body.get(field)?.value;
      if (typeof given !== 'string' || given === '') continue;
      const allowed = ctx.job?.cpuset?.[key];
      if (allowed === undefined || !cpuListWithin(given, allowed)) problems.push(`${field}=${given} is not within the job's ${allowed ?? '(unknown)'}`);
    }
    const period = body.get('CpuPeriod')?.value;
    if (period instanceof BodyNumber && period.value !== 0 && period.value !== Number(c.hostConfig.CpuPeriod ?? 0)) problems.push('CpuPeriod may not change (it changes what CpuQuota allows)');
    const restart = body.get('RestartPolicy')?.value;
    const name = restart instanceof BodyObject ? restart.get('Name')?.value : undefined;
    if (typeof name === 'string' && name !== '' && name !== 'no') problems.push(`RestartPolicy ${name} is not allowed: containers must not outlive the job`);
    return problems.length ? `berth denies container_update: ${problems.join('; ')}; an update may only lower limits` : undefined;
  }

  private async volumeCreate(request: DockerRequest, ctx: PolicyContext): Promise<string | undefined> {
    if (request.bodyText === undefined) return undefined;
    const body = request.body;
    const name = body instanceof BodyObject ? body.get('Name')?.value : undefined;
    if (typeof name !== 'string' || name === '') return undefined;
    if ((ctx.job?.volumes ?? []).includes(name)) return undefined;
    if (await this.d.engine.volume(name)) return `berth denies volume_create: a volume named ${name} exists and is not yours; choose another name`;
    return undefined;
  }
}

/** whether the container's own settings mount the volume by name (not anonymous) */
function namedIn(c: StoredContainer, name: string): boolean {
  const binds = Array.isArray(c.hostConfig.Binds) ? (c.hostConfig.Binds as unknown[]) : [];
  if (binds.some((b) => typeof b === 'string' && b.split(':')[0] === name)) return true;
  const mounts = Array.isArray(c.hostConfig.Mounts) ? (c.hostConfig.Mounts as { Type?: string; Source?: string }[]) : [];
  return mounts.some((m) => m?.Type === 'volume' && m.Source === name);
}
