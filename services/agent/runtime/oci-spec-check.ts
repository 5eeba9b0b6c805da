// The last look before a job's container runs: the OCI spec dockerd handed runc (the bundle's
// config.json), checked for what no job container may have, and rewritten so that (1) every
// host path it binds is pinned — opened by the job's user themselves and mounted from that
// open file (berth-runc does the opening) — and (2) the container lives in its job's cgroup,
// whose limits bound the sum over the job's containers.
import { cpuListWithin } from '../../shared/cpu-list';
import type { JobCpuset } from './job-cgroups';
import path from 'node:path';

/** Whose container it is, as berthd knows it (never from the spec itself). */
export interface ContainerOwner {
  jobId: string;
  uid: number;
  gid: number;
  /** the user's supplementary groups (NSS) */
  gids: number[];
  /** 'job' and 'step': made by berthd itself; 'user': made by the job's user through the Docker API */
  role: 'job' | 'step' | 'user';
}

export interface SpecContext {
  owner: ContainerOwner;
  containerId: string;
  /** dockerd's data-root: its own per-container files and local volumes live there */
  dataRoot: string;
  /** host paths berth itself binds into its own containers (berth-init, the job's passwd and group, ...) */
  berthFiles: readonly string[];
  /** where this container's pins go (root-only) */
  pinDir: string;
  /** the container's cgroup path below the job's cgroup; undefined to leave dockerd's */
  cgroupPath?: string;
  /** the job's CPUs and memory nodes on this node (Linux numbering); undefined: not known, left as asked */
  cpuset?: JobCpuset;
  /** device nodes the job may use */
  jobDevices: readonly string[];
  /** whether a namespace file is the host's network namespace (dockerd's netns/default for --network host) */
  isHostNetns: (file: string) => boolean;
}

export interface Pin {
  /** the root-only path the rewritten spec binds from */
  target: string;
  /** the host path as the spec named it, opened by the user */
  source: string;
}

export interface SpecVerdict {
  problems: string[];
  pins: Pin[];
  spec: OciSpec;
}

interface OciMount { destination?: string; type?: string; source?: string; options?: string[] }
interface OciSpec {
  process?: { user?: { uid?: number; gid?: number; additionalGids?: number[] }; noNewPrivileges?: boolean; capabilities?: Record<string, string[] | undefined> };
  mounts?: OciMount[];
  hooks?: Record<string, { path?: string; args?: string[] }[] | undefined>;
  linux?: {
    namespaces?: { type?: string; path?: string }[];
    seccomp?: unknown;
    devices?: { path?: string }[];
    maskedPaths?: string[];
    readonlyPaths?: string[];
    sysctl?: Record<string, string>;
    cgroupsPath?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/**
 * Every container of a job runs on the job's CPUs and memory nodes: one that asked for none gets
 * the job's; one that asked for a part of them keeps its part; one that asked beyond is refused.
 */
function confineCpuset(linux: NonNullable<OciSpec['linux']>, job: JobCpuset, jobId: string): string[] {
  const resources = (linux.resources ??= {}) as { cpu?: { cpus?: string; mems?: string } };
  const cpu = (resources.cpu ??= {});
  const problems: string[] = [];
  for (const [key, allowed, what] of [['cpus', job.cpus, 'CPUs'], ['mems', job.mems, 'memory nodes']] as const) {
    const asked = cpu[key];
    if (asked === undefined || asked === '') cpu[key] = allowed;
    else if (!cpuListWithin(asked, allowed)) problems.push(`the container asks for ${what} ${asked}, but job ${jobId} holds ${what} ${allowed} on this node`);
  }
  return problems;
}

/** Docker's default capabilities (what a container keeps unless it drops them). */
const DOCKER_DEFAULT_CAPS = new Set([
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
]);
const MASKED = ['/proc/kcore', '/proc/keys', '/sys/firmware', '/proc/sched_debug', '/proc/timer_list'];
const READONLY = ['/proc/sys', '/proc/sysrq-trigger', '/proc/irq', '/proc/bus'];

function under(p: string, prefix: string): boolean {
  const dir = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return p === prefix || p.startsWith(dir);
}

export function checkSpec(input: unknown, ctx: SpecContext): SpecVerdict {
  const spec = structuredClone(input) as OciSpec;
  const problems: string[] = [];
  const pins: Pin[] = [];
  const { owner } = ctx;
  const strict = owner.role === 'user';

  const u = spec.process?.user;
  if (u?.uid !== owner.uid || u?.gid !== owner.gid) problems.push(`it would run as ${u?.uid ?? '?'}:${u?.gid ?? '?'}, not as the job's user ${owner.uid}:${owner.gid}`);
  const allowedGids = new Set([owner.gid, ...owner.gids]);
  const extra = (u?.additionalGids ?? []).filter((g) => !allowedGids.has(g));
  if (extra.length) problems.push(`it would hold groups ${extra.join(', ')}, which are not the job user's`);
  if (spec.process?.noNewPrivileges !== true) problems.push('it would run without no-new-privileges');
  const caps = spec.process?.capabilities ?? {};
  for (const [set, list] of Object.entries(caps)) {
    const bad = (list ?? []).filter((c) => !strict || !DOCKER_DEFAULT_CAPS.has(c));
    if (bad.length) problems.push(`its ${set} capabilities would include ${bad.join(', ')}`);
  }

  const ns = spec.linux?.namespaces ?? [];
  const has = (t: string): { type?: string; path?: string } | undefined => ns.find((n) => n.type === t);
  for (const n of ns) {
    if (!n.path || (n.type === 'network' && ctx.isHostNetns(n.path))) continue;
    problems.push(`it would join another ${n.type} namespace (${n.path})`);
  }
  if (has('user')) problems.push('it would get a user namespace');
  for (const t of strict ? ['mount', 'pid', 'ipc', 'uts'] : ['mount', 'ipc', 'uts']) if (!has(t)) problems.push(`it would share the host's ${t} namespace`);

  for (const [kind, hooks] of Object.entries(spec.hooks ?? {})) {
    for (const h of hooks ?? []) {
      // dockerd's own: libnetwork-setkey, run as dockerd itself (/proc/<pid>/exe)
      if (kind === 'prestart' && h.args?.[0] === 'libnetwork-setkey' && /^\/proc\/[0-9]+\/exe$/.test(h.path ?? '')) continue;
      problems.push(`it would run a ${kind} hook (${h.path})`);
    }
  }
  if (spec.linux?.seccomp === undefined || spec.linux.seccomp === null) problems.push('it would run without a seccomp profile');
  for (const d of spec.linux?.devices ?? []) if (!ctx.jobDevices.includes(d.path ?? '')) problems.push(`it would get the device ${d.path}, which is not the job's`);
  if (strict) {
    const masked = spec.linux?.maskedPaths ?? [];
    const ro = spec.linux?.readonlyPaths ?? [];
    const unmasked = MASKED.filter((p) => !masked.includes(p));
    if (unmasked.length) problems.push(`${unmasked.join(', ')} would not be masked`);
    const writable = READONLY.filter((p) => !ro.includes(p));
    if (writable.length) problems.push(`${writable.join(', ')} would not be read-only`);
    if (Object.keys(spec.linux?.sysctl ?? {}).length) problems.push(`it would set sysctls ${Object.keys(spec.linux!.sysctl!).join(', ')}`);
  }

  const ownFiles = [path.join(ctx.dataRoot, 'containers', ctx.containerId), path.join(ctx.dataRoot, 'volumes')];
  // shared propagation: a mount made in the container would appear on the host
  const rootfsPropagation = spec.linux?.rootfsPropagation;
  if (rootfsPropagation === 'shared' || rootfsPropagation === 'rshared') problems.push(`its root file system's propagation would be ${rootfsPropagation}, carrying its mounts onto the host`);
  (spec.mounts ?? []).forEach((m, i) => {
    if ((m.type === 'sysfs' || m.type === 'cgroup') && !(m.options ?? []).includes('ro')) problems.push(`${m.destination} (${m.type}) would be writable`);
    const shared = (m.options ?? []).find((o) => o === 'shared' || o === 'rshared');
    if (shared) problems.push(`${m.destination} would be ${shared}, carrying mounts made in the container onto the host`);
    if (m.type !== 'bind' || !m.source?.startsWith('/')) return;
    const source = path.posix.normalize(m.source);
    if (ownFiles.some((p) => under(source, p))) return;
    if (!strict && ctx.berthFiles.some((p) => under(source, p))) return;
    const target = path.join(ctx.pinDir, String(i));
    pins.push({ target, source });
    m.source = target;
  });

  if (ctx.cgroupPath && spec.linux) {
    if (typeof spec.linux.cgroupsPath === 'string' && spec.linux.cgroupsPath.includes(':')) {
      problems.push(`dockerd uses the systemd cgroup driver (${spec.linux.cgroupsPath}); berth's job cgroups need native.cgroupdriver=cgroupfs`);
    } else spec.linux.cgroupsPath = ctx.cgroupPath;
  }
  if (ctx.cpuset && spec.linux) problems.push(...confineCpuset(spec.linux, ctx.cpuset, ctx.owner.jobId));
  return { problems, pins, spec };
}
