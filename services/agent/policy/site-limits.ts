// What the site sets for every job user's container, whatever the policy file says: the OCI
// runtime, the log driver and its size bounds, swap, a pids bound, mount options that keep the
// container's mounts off the host (mount-options.ts), and that every host path and named
// volume a container mounts is one the job's user could reach themselves. Judged
// on a create request with dockerd's defaults applied (an unset MemorySwap is twice the
// memory), and again on the container as dockerd stored it, before it starts.
import { reachablePath } from '../../shared/path-access';
import { cpuListWithin } from '../../shared/cpu-list';
import { BodyNumber, BodyObject, type BodyItem, type BodyValue, display, lookup } from '../docker-request/body';
import { parseFieldPath, type FieldPath } from '../docker-request/field-paths';
import { hostSourceOf } from './host-paths';
import { mountOptionViolations } from './mount-options';
import type { PolicyContext, Violation } from './policy-types';

export interface SiteLimits {
  /** the OCI runtime users' containers run with (dockerd's --default-runtime) */
  runtime: string;
  logDrivers: readonly string[];
  /** bound on a log file's max-size (json-file, local) */
  logMaxSizeBytes: number;
  logMaxFiles: number;
  /** false: memory plus swap must equal memory */
  allowSwap: boolean;
  /** bound on a container's PidsLimit (the job's cgroup bounds their sum); 0: none */
  pidsLimit: number;
}

export const DEFAULT_SITE_LIMITS: SiteLimits = {
  runtime: 'runc',
  logDrivers: ['json-file', 'local', 'none'],
  logMaxSizeBytes: 100 * 1024 * 1024,
  logMaxFiles: 5,
  allowSwap: false,
  pidsLimit: 32768,
};

const LOG_OPTIONS = new Set(['max-size', 'max-file', 'compress']);

const path = (t: string): FieldPath => parseFieldPath(t) as FieldPath;
const HOST = (name: string): FieldPath[] => [path(`HostConfig.${name}`), path(name)];

/** HostConfig.NAME and, as dockerd before 25 also reads it, NAME at the top of a create body */
function hostItems(body: BodyValue, name: string): BodyItem[] {
  return HOST(name).flatMap((p) => lookup(body, p)).filter((i) => i.value !== undefined && i.value !== null);
}

const num = (v: BodyValue | undefined): number | undefined => (v instanceof BodyNumber ? v.value : undefined);

/** Docker's units.RAMInBytes: 10m, 10M, 10mb, 1.5g (binary multiples); undefined when not a size */
export function ramBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(text.trim());
  if (!m) return undefined;
  const mult = { k: 1, m: 2, g: 3, t: 4, p: 5 }[(m[2] ?? '').toLowerCase() as 'k'] ?? 0;
  return Math.floor(Number(m[1]) * 1024 ** mult);
}

function mib(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)}m` : `${n} bytes`;
}

/**
 * `stored`: the body is a container as dockerd stored it (every default filled in), so what
 * is absent is absent for good (a json-file log without max-size grows without bound).
 */
export function siteLimitViolations(body: BodyValue, ctx: PolicyContext, site: SiteLimits, stored: boolean): Violation[] {
  const out: Violation[] = [];
  const add = (field: string, reason: string): void => void out.push({ field, reason });

  for (const i of hostItems(body, 'Runtime')) {
    if (i.value !== '' && i.value !== site.runtime) add(i.path, `${i.path}=${display(i.value)} is not allowed: containers run with the site's runtime ${site.runtime} (leave --runtime out)`);
  }

  for (const i of hostItems(body, 'LogConfig')) {
    if (!(i.value instanceof BodyObject)) continue;
    const type = i.value.get('Type')?.value;
    const t = typeof type === 'string' ? type : '';
    if (t !== '' && !site.logDrivers.includes(t)) add(`${i.path}.Type`, `${i.path}.Type=${display(type)} is not allowed: the log driver is one of the site's: ${site.logDrivers.join(', ')} (leave --log-driver out)`);
    const cfg = i.value.get('Config')?.value;
    const opts = new Map<string, string>();
    if (cfg instanceof BodyObject) {
      for (const k of cfg.keys) {
        const v = cfg.get(k)?.value;
        if (!LOG_OPTIONS.has(k)) add(`${i.path}.Config.${k}`, `--log-opt ${k} is not allowed: log options other than max-size, max-file and compress are the site's`);
        else if (typeof v === 'string') opts.set(k, v);
      }
    }
    const size = opts.get('max-size');
    if (size !== undefined) {
      const b = ramBytes(size);
      if (b === undefined || b <= 0) add(`${i.path}.Config.max-size`, `--log-opt max-size=${size} is not allowed: it must be a size of at most ${mib(site.logMaxSizeBytes)} (no unbounded logs)`);
      else if (b > site.logMaxSizeBytes) add(`${i.path}.Config.max-size`, `--log-opt max-size=${size} is not allowed: it must be at most ${mib(site.logMaxSizeBytes)}`);
    } else if (stored && (t === 'json-file' || t === '')) {
      add(`${i.path}.Config.max-size`, `the container's json-file log has no max-size, so it would grow without bound: the site's dockerd must set log-opts max-size (daemon.json); ask the site's administrators`);
    }
    const files = opts.get('max-file');
    if (files !== undefined && !(/^[1-9][0-9]*$/.test(files) && Number(files) <= site.logMaxFiles)) {
      add(`${i.path}.Config.max-file`, `--log-opt max-file=${files} is not allowed: it must be 1 to ${site.logMaxFiles}`);
    }
  }

  if (!site.allowSwap) {
    const memory = Math.max(0, ...hostItems(body, 'Memory').map((i) => num(i.value) ?? 0));
    if (memory > 0) {
      const swaps = hostItems(body, 'MemorySwap');
      const given = swaps.map((i) => num(i.value)).find((v) => v !== undefined && v !== 0);
      const effective = given ?? memory * 2;
      if (effective !== memory) {
        const shown = given === undefined ? `HostConfig.MemorySwap is not set, so Docker gives the container as much swap as memory (memory plus swap ${effective})` : `HostConfig.MemorySwap=${given}${given < 0 ? ' (unlimited swap)' : ''}`;
        add('HostConfig.MemorySwap', `${shown}: the site allows no swap; give --memory-swap equal to --memory (${memory})`);
      }
    }
  }

  for (const i of hostItems(body, 'PidsLimit')) {
    const n = num(i.value);
    if (n === undefined) add(i.path, `${i.path}=${display(i.value)} is not a number`);
    else if (n < 0) add(i.path, `${i.path}=${n} means no limit: leave --pids-limit out (the job's own bound applies) or give 1 to ${site.pidsLimit || 'the job bound'}`);
    else if (site.pidsLimit > 0 && n > site.pidsLimit) add(i.path, `${i.path}=${n} is not allowed: it must be at most ${site.pidsLimit}`);
  }

  mountOptionViolations({ binds: hostItems(body, 'Binds[*]'), mounts: hostItems(body, 'Mounts[*]'), tmpfs: hostItems(body, 'Tmpfs') }, ctx, add);

  const job = ctx.job;
  if (job?.cpuset) {
    // Cpuset: the top-level name API versions before 1.25 gave CpusetCpus
    for (const [name, allowed, what] of [['CpusetCpus', job.cpuset.cpus, 'CPUs'], ['Cpuset', job.cpuset.cpus, 'CPUs'], ['CpusetMems', job.cpuset.mems, 'memory nodes']] as const) {
      for (const i of hostItems(body, name)) {
        if (i.value === '') continue;
        if (typeof i.value !== 'string' || !cpuListWithin(i.value, allowed)) add(i.path, `${i.path}=${display(i.value)} is not allowed: job ${job.jobId} holds ${what} ${allowed} on this node (leave --cpuset-${name === 'CpusetMems' ? 'mems' : 'cpus'} out to get them all, or name some of them)`);
      }
    }
  }
  if (job) {
    const who = { uid: job.uid, gids: [job.gid, ...(job.groupIds ?? [])] };
    const owned = new Set(job.volumes ?? []);
    for (const f of ['Binds[*]', 'Mounts[*]']) {
      for (const i of hostItems(body, f)) {
        const source = hostSourceOf(i.value);
        if (source !== undefined) {
          try {
            reachablePath(source, who, 'the host path');
          } catch (err) {
            add(i.path, `${i.path}=${display(i.value)} is not allowed: ${(err as Error).message}; a container may mount only what you could open yourself`);
          }
          continue;
        }
        const name = namedVolume(i.value);
        if (name !== undefined && !owned.has(name)) {
          add(i.path, `${i.path}=${display(i.value)} is not allowed: volume ${name} is not one your job created (docker volume create in this job, then mount it by name)`);
        }
      }
    }
  }
  return out;
}

/** The volume a Binds entry (NAME:/dst) or a Mounts object of type volume names; undefined for anonymous ones and host paths. */
export function namedVolume(value: BodyValue | undefined): string | undefined {
  if (typeof value === 'string') {
    const colon = value.indexOf(':');
    if (colon <= 0) return undefined;
    const source = value.slice(0, colon);
    return source.startsWith('/') ? undefined : source;
  }
  if (value instanceof BodyObject) {
    const type = value.get('Type')?.value;
    if (typeof type !== 'string' || type.toLowerCase() !== 'volume') return undefined;
    const source = value.get('Source')?.value;
    return typeof source === 'string' && source !== '' ? source : undefined;
  }
  return undefined;
}
