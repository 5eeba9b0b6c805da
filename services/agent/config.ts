// berthd configuration: a JSON file, overridden by command-line flags, validated once at
// start (a bad value is one clear message and a non-zero exit), then compiled: durations
// become milliseconds (the file writes seconds; nothing converts them at the use sites),
// berthd's own protected paths are listed once, and the whole object is deep-frozen.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { z } from 'zod';
import { DEFAULT_RUN_DIR } from '../shared/paths';
import { DEFAULT_SITE_RULES_FILE } from '../shared/site-rules';
import { type OwnPath, ownPaths } from './protected-paths';

const absolutePath = z.string().refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });
/** a root of slurmd's cgroups on the node: %n for the node's name, nothing that leaves it */
const slurmCgroupRoot = absolutePath
  .refine((p) => !/%[^n]/.test(p.replace(/%%/g, '')) && !p.split('/').includes('..'), { message: 'may hold %n (the node\'s name) and no other %-sequence or ..' });

const authzSchema = z.object({
  /** dockerd --authorization-plugin=NAME; berthd writes pluginSpecDir/NAME.spec */
  pluginName: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lowercase letters, digits, . _ -').default('berth'),
  pluginSpecDir: absolutePath.default('/etc/docker/plugins'),
  policyFile: absolutePath,
  auditFile: absolutePath.default('/var/log/berth/authz-audit.jsonl'),
  /** where dockerd listens with --tlsverify for job users (given to them as DOCKER_HOST) */
  dockerTlsAddress: z.string().regex(/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d{1,5}$/, 'must be a loopback host:port, e.g. 127.0.0.1:2376').default('127.0.0.1:2376'),
  /** the oldest Docker API version job users may use (/vX.Y/ in the path); older ones apply legacy forms berth cannot check */
  /** the OCI runtime job users' containers run with: dockerd's default runtime (berth-runc where the runtime gate is installed) */
  runtime: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/).default('runc'),
  /** log drivers users' containers may use, and bounds on their max-size and max-file */
  logDrivers: z.array(z.string().min(1)).min(1).default(['json-file', 'local', 'none']),
  logMaxSizeBytes: z.number().int().min(1024).default(100 * 1024 * 1024),
  logMaxFiles: z.number().int().min(1).max(100).default(5),
  /** false: users' containers get no swap (memory plus swap = memory) */
  allowSwap: z.boolean().default(false),
  /** bound on one container's --pids-limit; the job's cgroup bounds the sum */
  pidsLimit: z.number().int().min(0).default(32768),
  minApiVersion: z.string().regex(/^1\.[0-9]+$/, 'must be 1.N, e.g. 1.40').refine((v) => Number(v.split('.')[1]) >= 24, 'must be 1.24 or later: older versions apply a HostConfig sent with start').default('1.40'),
}).strict();

const remoteAccessSchema = z.object({
  /** HOST:PORT to listen on with mutual TLS, e.g. 0.0.0.0:7443 or 10.1.2.3:7443 */
  listen: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 0.0.0.0:7443')
    .refine((a) => { const p = Number(a.slice(a.lastIndexOf(':') + 1)); return p >= 1 && p <= 65535; }, 'the port must be 1-65535'),
  /** this node's server certificate (PEM), signed by the site CA; its SAN must name the host clients dial */
  certFile: absolutePath,
  keyFile: absolutePath,
  /** the site CA (PEM): only client certificates it signed pass the TLS handshake */
  caFile: absolutePath,
  /** client identity (certificate CN, or a DNS, URI or email SAN) → roles: read, admin (admin includes read) */
  clients: z.record(z.string().min(1), z.array(z.enum(['read', 'admin'])).min(1, 'give at least one role: read or admin'))
    .refine((c) => Object.keys(c).length > 0, 'name at least one client identity, e.g. {"ops-monitor": ["read"]}'),
}).strict();

const imageGcSchema = z.object({
  /** start collecting when the engine's file system is this full */
  highPercent: z.number().min(1).max(100).default(85),
  /** stop once it is back under this */
  lowPercent: z.number().min(0).max(100).default(70),
  /** images used (or created) more recently than this are kept */
  minAgeSeconds: z.number().int().min(0).default(3600),
  schedule: z.string().default('*/10 * * * *'),
  /** log what would be removed, remove nothing */
  dryRun: z.boolean().default(false),
  /**
   * The most bytes the node's images may take (as `docker images` counts them), e.g. a
   * diskless node's tmpfs data-root less room for containers and downloads; the watermarks
   * then apply to it as well as to the disk. A pull makes room by removing unused images;
   * an image bigger than this never runs here. Absent: the disk alone bounds the cache.
   */
  budgetBytes: z.number().int().min(1).optional(),
}).strict().refine((g) => g.lowPercent < g.highPercent, { message: 'lowPercent must be below highPercent' });

const accountingRotationSchema = z.object({
  /** rotate before an append would take the file past this; 0 = never (rotate it outside berthd) */
  maxBytes: z.number().int().min(0).default(64 * 1024 * 1024),
  /** rotated files kept (FILE.1 … FILE.keep); QueryAccounting reads all of them */
  keep: z.number().int().min(0).max(1000).default(10),
}).strict().refine((r) => r.maxBytes === 0 || r.maxBytes >= 4096, { message: 'maxBytes must be 0 (no rotation) or at least 4096' });

/** host:port; a bracketed IPv6 address or a host name. Off when the section is absent. */
const metricsSchema = z.object({
  listen: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:9464 (or [::1]:9464)')
    .refine((l) => { const p = Number(l.slice(l.lastIndexOf(':') + 1)); return p >= 1 && p <= 65535; }, { message: 'port must be 1-65535' }),
}).strict();

export const configSchema = z.object({
  node: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a Slurm node name (letters, digits, . _ -)').default(os.hostname().split('.')[0] ?? 'localhost'),
  runDir: absolutePath.default(DEFAULT_RUN_DIR),
  stateDir: absolutePath.default('/var/lib/berth'),
  dockerHost: z.string().regex(/^unix:\/\/\//, 'must be unix:///path/to/docker.sock').default('unix:///var/run/docker.sock'),
  initBinary: absolutePath.default('/usr/local/lib/berth/berth-init'),
  accountingFile: absolutePath.default('/var/log/berth/accounting.jsonl'),
  /** size-based rotation of accountingFile by berthd itself */
  accountingRotation: accountingRotationSchema.default({}),
  /** Prometheus endpoint (GET /metrics over plain HTTP); off when absent */
  metrics: metricsSchema.optional(),
  logFile: absolutePath.optional(),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  rdmaDevices: z.array(absolutePath).default(['/dev/infiniband/uverbs*', '/dev/infiniband/rdma_cm']),
  /** Slurm's gres.conf: which device files are this node's GPUs, in Slurm's order (IDX) */
  gresConf: absolutePath.default('/etc/slurm/gres.conf'),
  /**
   * Host files and directories of the GPU driver (libcuda, libnvidia-ml, nvidia-smi, ROCm's
   * libraries) bind-mounted read-only at their own path into the containers of jobs that
   * have GPUs; those missing on a node are left out.
   */
  gpuHostFiles: z.array(absolutePath).default([]),
  /**
   * The site rules (shared/site-rules.ts): site mounts, users' mounts, container defaults,
   * registries. One world-readable file that `berth submit-check` reads too.
   */
  siteRules: absolutePath.default(DEFAULT_SITE_RULES_FILE),
  /** bytes, or "unlimited" (what RDMA wants) */
  memlock: z.union([z.literal('unlimited'), z.number().int().min(0)]).default('unlimited'),
  /** the pids bound of a job's cgroup on this node: the sum over its containers */
  jobPidsLimit: z.number().int().min(0).default(16384),
  stopGraceSeconds: z.number().int().min(0).max(600).default(10),
  pullTimeoutSeconds: z.number().int().min(1).default(600),
  pullInactivitySeconds: z.number().int().min(1).default(120),
  mungeMaxAgeSeconds: z.number().int().min(1).default(120),
  orphanSchedule: z.string().default('*/5 * * * *'),
  orphanGraceSeconds: z.number().int().min(0).default(300),
  /**
   * Pull-through mirrors per registry for this node's group, tried in order before the
   * registry itself: {"registry.site:5000": ["mirror.rack12:5000"]}. Images are pulled by
   * digest, so any mirror serves exactly what the origin would.
   */
  /**
   * The site's registry credentials, in docker config.json format ({"auths": {...}}, what
   * `docker --config DIR login` writes): root's, mode 0600. Used for berth pull and for jobs
   * whose users have no login of their own for that registry.
   */
  registryCredentialsFile: absolutePath.optional(),
  mirrors: z.record(z.string().min(1), z.array(z.string().min(1))).default({}),
  /** image cache garbage collection (least recently used first, between two disk watermarks) */
  imageGc: imageGcSchema.default({}),
  /**
   * Slurm's TaskProlog (slurm.conf): slurmstepd runs it after a native container step's task
   * has joined its container, so it is bind-mounted read-only at the same path into every
   * container berth makes (when it exists); it must run with the image's /bin/sh.
   */
  taskProlog: absolutePath.default('/usr/local/lib/berth/hooks/task-prolog'),
  /**
   * slurmd's SlurmdSpoolDir on this node (%n resolved): bind-mounted read-only into job
   * containers so that a batch script run in the container (sbatch --container-image) can be exec'd
   * from where slurmstepd put it.
   */
  slurmdSpoolDir: absolutePath.default('/var/lib/slurm/slurmd'),
  /**
   * Where slurmd's freezer cgroups of this node's jobs are (cgroup v1, proctrack/cgroup):
   * <CgroupMountpoint>/freezer/slurm, or slurm_%n (%n: the node's name) when Slurm was built
   * with --enable-multiple-slurmd, as the sandbox's is. A `berth exec` step's processes join
   * the freezer cgroup of the step that ran it (uid_<uid>/job_<id>/step_<step> below this).
   */
  slurmFreezerCgroup: slurmCgroupRoot.default('/sys/fs/cgroup/freezer/slurm_%n'),
  /**
   * Where slurmd's memory and cpuacct cgroups of this node's jobs are (cgroup v1; task/cgroup
   * makes the memory ones, jobacct_gather/cgroup both), %n as in slurmFreezerCgroup. A `berth
   * exec` step's processes join the task cgroups (uid_<uid>/job_<id>/step_<step>/task_<task>
   * below these) of the `berth exec` client, so sacct counts them and the job's Slurm memory
   * limit bounds them. A controller left out is not placed in.
   */
  slurmTaskCgroups: z.object({ memory: slurmCgroupRoot.optional(), cpuacct: slurmCgroupRoot.optional() }).strict()
    .default({ memory: '/sys/fs/cgroup/memory/slurm_%n', cpuacct: '/sys/fs/cgroup/cpuacct/slurm_%n' }),
  /** Docker API access for job users through berth's AuthZ plugin; off when absent */
  authz: authzSchema.optional(),
  /** a TCP listener with mutual TLS for admins' remote `berth` commands; off when absent */
  remoteAccess: remoteAccessSchema.optional(),
}).strict();

/** the config as written: the file and the flags, validated, with the schema's defaults */
export type AgentConfigInput = z.infer<typeof configSchema>;

type DeepReadonly<T> = T extends (infer E)[] ? readonly DeepReadonly<E>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

type SecondsKeys = 'stopGraceSeconds' | 'pullTimeoutSeconds' | 'pullInactivitySeconds' | 'mungeMaxAgeSeconds' | 'orphanGraceSeconds';

/** The config berthd runs with: compiled once at load (durations in milliseconds), deep-frozen. */
export type AgentConfig = DeepReadonly<Omit<AgentConfigInput, SecondsKeys | 'imageGc'> & {
  /** how long a stopped container gets between SIGTERM and SIGKILL */
  stopGraceMs: number;
  /** the longest one pull may take */
  pullTimeoutMs: number;
  /** a pull that shows no progress for this long has stalled */
  pullInactivityMs: number;
  /** the oldest munge credential berthd accepts */
  mungeMaxAgeMs: number;
  /** an orphan (a berth container of no job Slurm runs here) is removed once this old */
  orphanGraceMs: number;
  imageGc: Omit<AgentConfigInput['imageGc'], 'minAgeSeconds'> & {
    /** images used (or created) more recently than this are kept */
    minAgeMs: number;
  };
  /** berthd's own paths, which no job may mount (protected-paths.ts), built once here */
  ownPaths: readonly OwnPath[];
}>;

const SECOND_MS = 1000;

/** The validated input compiled into what berthd runs with: milliseconds, the protected paths, all frozen. */
export function compileConfig(input: AgentConfigInput): AgentConfig {
  const { stopGraceSeconds, pullTimeoutSeconds, pullInactivitySeconds, mungeMaxAgeSeconds, orphanGraceSeconds, imageGc, ...rest } = input;
  const { minAgeSeconds, ...gc } = imageGc;
  return deepFreeze({
    ...rest,
    stopGraceMs: stopGraceSeconds * SECOND_MS,
    pullTimeoutMs: pullTimeoutSeconds * SECOND_MS,
    pullInactivityMs: pullInactivitySeconds * SECOND_MS,
    mungeMaxAgeMs: mungeMaxAgeSeconds * SECOND_MS,
    orphanGraceMs: orphanGraceSeconds * SECOND_MS,
    imageGc: { ...gc, minAgeMs: minAgeSeconds * SECOND_MS },
    ownPaths: ownPaths(input),
  });
}

/** Freezes `value` and every object and array inside it; returns it, typed read-only all the way down. */
export function deepFreeze<T>(value: T): DeepReadonly<T> {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value as DeepReadonly<T>;
}

/** outside the catalogue: met only at start (berthd prints it and exits 2), never an RPC's answer */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function describeIssues(err: z.ZodError, source: string): string {
  return err.issues
    .map((i) => `${source}: ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`)
    .join('\n');
}

/** Reads FILE (if given), applies flag overrides, validates, compiles and deep-freezes (compileConfig). */
export function loadConfig(file: string | undefined, overrides: Record<string, unknown>): AgentConfig {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ConfigError(`config file ${file} must hold one JSON object`);
    }
  }
  const merged: Record<string, unknown> = { ...raw };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) merged[k] = v;
  const moved = takeMovedKeys(merged).map((k) => `${file ?? 'flags'}: ${k}: has moved to the site rules file (${String(merged.siteRules ?? DEFAULT_SITE_RULES_FILE)}, key ${k.replace(/^authz\./, '')}), which berth submit-check reads too; move it there (docs/configuration.md, "Site rules")`);
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success || moved.length) throw new ConfigError([...moved, ...(parsed.success ? [] : [describeIssues(parsed.error, file ?? 'flags')])].join('\n'));
  return compileConfig(parsed.data);
}

/** Removes (and names) the keys of older berthd.json files that are now the site rules'. */
function takeMovedKeys(raw: Record<string, unknown>): string[] {
  const out = ['mounts', 'containerDefaults', 'userMounts'].filter((k) => k in raw);
  for (const k of out) delete raw[k];
  const authz = raw.authz;
  if (authz && typeof authz === 'object' && !Array.isArray(authz) && 'registries' in authz) {
    out.push('authz.registries');
    const { registries: _moved, ...rest } = authz as Record<string, unknown>;
    raw.authz = rest;
  }
  return out;
}

export function dockerSocketPath(config: AgentConfig): string {
  return config.dockerHost.slice('unix://'.length);
}

export interface RemoteTls {
  listen: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Reads the remote-access TLS files named in the config; a missing one is a ConfigError. */
export function loadRemoteTls(config: AgentConfig): RemoteTls | undefined {
  const r = config.remoteAccess;
  if (!r) return undefined;
  const read = (key: string, file: string): Buffer => {
    let b: Buffer;
    try {
      b = readFileSync(file);
    } catch (err) {
      throw new ConfigError(`remoteAccess.${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!b.toString('utf8').includes('-----BEGIN ')) throw new ConfigError(`remoteAccess.${key}: ${file} is not a PEM file`);
    return b;
  };
  return { listen: r.listen, ca: read('caFile', r.caFile), cert: read('certFile', r.certFile), key: read('keyFile', r.keyFile) };
}
