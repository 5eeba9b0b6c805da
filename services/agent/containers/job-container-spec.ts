// The Docker create body for a job container: the job's user, host network and PIDs, the node's RDMA
// devices, no capabilities, no new privileges, the job's allocation as limits, the working
// directory and site mounts. PID 1 is berth-init, bind-mounted read-only, which keeps the
// container up for the job's lifetime and reaps orphans, whatever the image holds.
import { isTmpfs, type Propagation, tmpfsSizeBytes, UNSHARE_NAMESPACES, type UnshareNamespace } from '../../shared/container-options';
import type { ContainerCreateSpec } from '../docker/engine';
import { type JobIdentity, jobContainerName, jobLabels, LABEL } from './labels';

export const INIT_PATH = '/.berth/init';

export interface SiteMount {
  /** a host path, or 'tmpfs' for a tmpfs at target (users' --container-mounts=tmpfs:/dst) */
  source: string;
  target: string;
  readOnly: boolean;
  /** bind propagation; undefined = Docker's (rprivate) */
  propagation?: Propagation;
  /** a user's tmpfs's own options (size=, nr_inodes=, mode=: TMPFS_OPTIONS, checked) */
  tmpfsOptions?: string[];
}

/** a user's tmpfs is bounded by the job's memory on the node (its pages count there too), else by this */
export const TMPFS_DEFAULT_BYTES = 1024 ** 3;

/** what is wrong with a user's tmpfs on a node where the job has memoryBytes (0: unknown), or undefined */
export function userTmpfsProblem(m: Pick<SiteMount, 'tmpfsOptions'>, memoryBytes: number): string | undefined {
  const size = m.tmpfsOptions?.find((o) => o.startsWith('size='));
  const limit = memoryBytes > 0 ? memoryBytes : TMPFS_DEFAULT_BYTES;
  if (size && !(tmpfsSizeBytes(size.slice(5)) <= limit)) {
    return `${size} is more than ${memoryBytes > 0 ? `the job's memory on this node, ${limit} bytes` : `${limit} bytes, a tmpfs's size in a job without a memory limit`}; ask for less, or give the job more memory (--mem)`;
  }
  return undefined;
}

/**
 * HostConfig.Tmpfs options of a user's tmpfs: the job user's, never setuid or device files, bounded
 * by the job's memory (or the size= they asked for, within it: userTmpfsProblem); programs run
 * from it (as in pyxis's, where Docker's default is noexec); nr_inodes= and mode= as asked
 */
export function userTmpfsOptions(m: Pick<SiteMount, 'readOnly' | 'tmpfsOptions'>, uid: number, gid: number, memoryBytes: number): string {
  const asked = new Map((m.tmpfsOptions ?? []).map((o) => [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)]));
  const size = asked.get('size') ?? String(memoryBytes > 0 ? memoryBytes : TMPFS_DEFAULT_BYTES);
  const extra = ['nr_inodes'].filter((k) => asked.has(k)).map((k) => `,${k}=${asked.get(k)}`).join('');
  return `${m.readOnly ? 'ro' : 'rw'},nosuid,nodev,exec,size=${size}${extra},mode=${asked.get('mode') ?? '0755'},uid=${uid},gid=${gid}`;
}

function bindText(m: SiteMount): string {
  const opts = [...(m.readOnly ? ['ro'] : []), ...(m.propagation ? [m.propagation] : [])];
  return `${m.source}:${m.target}${opts.length ? `:${opts.join(',')}` : ''}`;
}

export interface JobContainerInput {
  identity: JobIdentity;
  /** the container's name; default the job container's */
  name?: string;
  /** repository@sha256:… */
  image: string;
  supplementaryGids: readonly number[];
  cpus: number;
  memoryBytes: number;
  devices: readonly string[];
  /** variables the job's devices come with (its GPUs' numbering, as Slurm sets it for tasks) */
  deviceEnv?: Readonly<Record<string, string>>;
  mounts: readonly SiteMount[];
  initBinary: string;
  /** bytes or -1 (unlimited) */
  memlockBytes: number;
  /** host files holding the image's passwd and group plus the job user's entries */
  userFiles: { passwd: string; group: string };
  /** the user's own mounts and home (checked: user-options.ts) */
  userMounts?: readonly SiteMount[];
  /** read-only root file system (--container-readonly); /tmp is then a private tmpfs */
  readOnly?: boolean;
  /** --container-workdir: the container's working directory */
  workingDir?: string;
  /** host paths bind-mounted read-only at their own path (Slurm's TaskProlog, slurmd's spool) */
  hostFiles?: readonly string[];
  /** --container-unshare: the namespaces the container and its tasks have of their own */
  unshare?: readonly UnshareNamespace[];
  /** the node's hostname: a container with a network namespace of its own starts with it in its UTS namespace, as pyxis's */
  hostname?: string;
}

/** the label that records a container's --container-unshare (net,ipc,uts), for the steps that join it */
export const UNSHARE_LABEL = LABEL.unshare;

/** the namespaces a container was made with of its own (its UNSHARE_LABEL); unknown names are dropped */
export function unsharedOf(labels: Readonly<Record<string, string>>): UnshareNamespace[] {
  const given = (labels[UNSHARE_LABEL] ?? '').split(',');
  return UNSHARE_NAMESPACES.filter((n) => given.includes(n));
}

/** The create request, with the mounts and devices it was built from as values (binds are their text). */
export interface JobContainerSpec extends ContainerCreateSpec {
  /** every bind, in the order of HostConfig.Binds */
  mounts: readonly SiteMount[];
  /** host paths of HostConfig.Devices */
  devices: readonly string[];
}

export function buildJobContainerSpec(input: JobContainerInput): JobContainerSpec {
  const { identity: id } = input;
  const mounts: SiteMount[] = [
    { source: input.initBinary, target: INIT_PATH, readOnly: true },
    { source: input.userFiles.passwd, target: '/etc/passwd', readOnly: true },
    { source: input.userFiles.group, target: '/etc/group', readOnly: true },
  ];
  for (const f of input.hostFiles ?? []) mounts.push({ source: f, target: f, readOnly: true });
  // the working directory is bound at its own path (in place of a site mount there), unless
  // the user mounts something there: their choice wins
  const userMounts = input.userMounts ?? [];
  if (id.workDir && !userMounts.some((m) => m.target === id.workDir)) mounts.push({ source: id.workDir, target: id.workDir, readOnly: false });
  for (const m of input.mounts) if (m.target !== id.workDir) mounts.push(m);
  mounts.push(...userMounts.filter((m) => !isTmpfs(m)));
  const binds = mounts.map(bindText);
  const tmpfs: Record<string, string> = {};
  if (input.readOnly) tmpfs['/tmp'] = 'rw,nosuid,nodev,mode=1777';
  // the user's tmpfs mounts, a /tmp of theirs in place of berth's
  for (const m of userMounts) if (isTmpfs(m)) tmpfs[m.target] = userTmpfsOptions(m, id.uid, id.gid, input.memoryBytes);
  const unshare = new Set(input.unshare ?? []);
  const hostConfig: Record<string, unknown> = {
    // --container-unshare=net: a network namespace with only loopback, as pyxis's (enroot's)
    NetworkMode: unshare.has('net') ? 'none' : 'host',
    // the host's PID namespace, as for any Slurm task (and enroot/pyxis containers): tasks that
    // join the container natively keep their host PIDs, and /proc/self must be theirs
    PidMode: 'host',
    Binds: binds,
    Devices: input.devices.map((d) => ({ PathOnHost: d, PathInContainer: d, CgroupPermissions: 'rwm' })),
    Ulimits: [{ Name: 'memlock', Soft: input.memlockBytes, Hard: input.memlockBytes }],
    CapDrop: ['ALL'],
    CapAdd: [],
    SecurityOpt: ['no-new-privileges'],
    Privileged: false,
    GroupAdd: input.supplementaryGids.filter((g) => g !== id.gid).map(String),
    RestartPolicy: { Name: 'no' },
    AutoRemove: false,
    Init: false,
  };
  // Docker gives every container an IPC namespace of its own (the daemon's default mode); asked
  // for, it is one no other container may join. The host's is never shared (its /dev/shm is
  // every job's), so pyxis's default of the host's IPC namespace is not berth's.
  if (unshare.has('ipc')) hostConfig.IpcMode = 'private';
  if (input.readOnly) hostConfig.ReadonlyRootfs = true;
  if (Object.keys(tmpfs).length) hostConfig.Tmpfs = tmpfs;
  if (input.cpus > 0) hostConfig.NanoCpus = input.cpus * 1_000_000_000;
  if (input.memoryBytes > 0) {
    hostConfig.Memory = input.memoryBytes;
    hostConfig.MemorySwap = input.memoryBytes;
  }
  return {
    mounts: mounts.map((m) => ({ source: m.source, target: m.target, readOnly: m.readOnly, ...(m.propagation ? { propagation: m.propagation } : {}) })),
    devices: [...input.devices],
    name: input.name ?? jobContainerName(id.node, id.jobId),
    body: {
      Image: input.image,
      Entrypoint: [INIT_PATH, 'pause'],
      Cmd: [],
      User: `${id.uid}:${id.gid}`,
      WorkingDir: input.workingDir || id.workDir || '/',
      Env: [`BERTH_JOB_ID=${id.jobId}`, `SLURM_JOB_ID=${id.jobId}`, ...Object.entries(input.deviceEnv ?? {}).map(([k, v]) => `${k}=${v}`)],
      Labels: { ...jobLabels(id), ...(unshare.size ? { [UNSHARE_LABEL]: UNSHARE_NAMESPACES.filter((n) => unshare.has(n)).join(',') } : {}) },
      // Docker names a container without the host's network after its id: the node's name instead, as pyxis keeps it
      ...(unshare.has('net') && input.hostname ? { Hostname: input.hostname } : {}),
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      HostConfig: hostConfig,
    },
  };
}

/**
 * The body the site policy judges for a container berth makes: what the user chose, without
 * what berth itself gives every container and users' own docker run may not ask for: the
 * host PID namespace (native task launch needs it) and the memlock rlimit (RDMA needs it).
 */
export function policyView(body: Record<string, unknown>): Record<string, unknown> {
  const hostConfig = { ...(body.HostConfig as Record<string, unknown>) };
  delete hostConfig.PidMode;
  delete hostConfig.Ulimits;
  return { ...body, HostConfig: hostConfig };
}
