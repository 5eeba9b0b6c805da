// The --container-* options of sbatch, salloc and srun (named as pyxis names them), their
// environment-variable equivalents, and the rules every value must follow. The same checks
// run at submit (`berth submit-check`, as the user), in the prolog hook and in berthd, so a
// value berthd would refuse fails the submission in the user's terminal instead.
import path from 'node:path';

/** bind propagation berth lets a user ask for: none of them carries a mount from the container to the host */
export const PROPAGATIONS = ['private', 'rprivate', 'slave', 'rslave'] as const;
export type Propagation = (typeof PROPAGATIONS)[number];

export interface UserMount {
  /** the host path; TMPFS for a tmpfs (pyxis's tmpfs:/dst) */
  source: string;
  target: string;
  readOnly: boolean;
  /** bind propagation; undefined = Docker's default (rprivate) */
  propagation?: Propagation;
  /** a tmpfs's own options, KEY=VALUE in TMPFS_OPTIONS's order (size, nr_inodes, mode); undefined = none */
  tmpfsOptions?: string[];
}

/**
 * the tmpfs options berth takes from tmpfs:DST:FLAGS (pyxis hands them to the mount), each with
 * the values it may have: those dockerd takes for a tmpfs. The tmpfs is always the job user's,
 * nosuid and nodev, and at most the job's memory on the node (berthd checks size= there, where
 * it knows that memory)
 */
export const TMPFS_OPTIONS: Readonly<Record<string, { form: string; valid: RegExp }>> = Object.freeze({
  size: { form: 'bytes with k, m or g, e.g. size=512m', valid: /^[1-9][0-9]{0,15}[kmg]?$/i },
  nr_inodes: { form: 'a count with k, m or g, e.g. nr_inodes=100k', valid: /^[1-9][0-9]{0,15}[kmg]?$/i },
  mode: { form: 'octal permissions of its root, e.g. mode=0700', valid: /^0?[0-7]{3}$/ },
});

/** tmpfs options pyxis passes on that no berth tmpfs can have, and why */
const REFUSED_TMPFS_OPTIONS: Record<string, string> = {
  huge: "dockerd makes berth's tmpfs mounts and takes no huge= for them (only size=, nr_inodes= and mode=); leave it out (the tmpfs uses the node's default, /sys/kernel/mm/transparent_hugepage/shmem_enabled)",
  mpol: 'a tmpfs of a job keeps the node\'s memory policy; leave it out (numactl in the step sets one for its own memory)',
};

/** a tmpfs's size= in bytes (size is TMPFS_OPTIONS's form) */
export function tmpfsSizeBytes(size: string): number {
  const m = /^([0-9]+)([kmg]?)$/i.exec(size);
  if (!m) return Number.NaN;
  return Number(m[1]) * 1024 ** ({ '': 0, k: 1, m: 2, g: 3 }[m[2]!.toLowerCase() as ''] ?? 0);
}

/** the source that makes a mount a tmpfs at its target, as pyxis and enroot write it */
export const TMPFS = 'tmpfs';

export const isTmpfs = (m: Pick<UserMount, 'source'>): boolean => m.source === TMPFS;

/** pyxis's --container-name flags (NAME:FLAG): auto (default), create, exec, no_exec */
export const NAME_FLAGS = ['auto', 'create', 'exec', 'no_exec'] as const;
export type NameFlag = (typeof NAME_FLAGS)[number];

/**
 * pyxis's --container-unshare namespaces: net (a network namespace with only loopback), ipc (a
 * private IPC namespace: berth's containers always have one, pyxis's share the host's unless
 * asked) and uts (the container's own hostname and domain name, starting as the host's)
 */
export const UNSHARE_NAMESPACES = ['net', 'ipc', 'uts'] as const;
export type UnshareNamespace = (typeof UNSHARE_NAMESPACES)[number];

export interface ContainerOptions {
  mounts: UserMount[];
  /** working directory inside the container; '' = the step's own (the client's cwd) */
  workdir: string;
  /** host variables that reach the container's steps, overriding the image's */
  envNames: string[];
  /** a name for the container, kept for the job's steps; '' = none */
  name: string;
  /** how a step treats a container of that name (pyxis's NAME:FLAG); undefined = auto */
  nameFlag?: NameFlag;
  /** bind the user's home directory; undefined = the site's default */
  mountHome?: boolean;
  /** read-only root file system; undefined = the site's default (writable) */
  readOnly?: boolean;
  /** --container-unshare: namespaces of the container's own, in UNSHARE_NAMESPACES's order; undefined = none */
  unshare?: readonly UnshareNamespace[];
}

/**
 * outside the catalogue: the shared option rules throw it for berth submit-check (which prints it
 * at submit, exit 1); berthd converts it where it meets it: OPTIONS_INVALID (jobs/prologue-request.ts),
 * MOUNT_REFUSED (containers/user-options.ts), POLICY_DENIED (the registry rule, jobs/job-service.ts)
 */
export class OptionError extends Error {}

/** option name → environment variable, as the plugin and `berth submit-check` read them */
export const OPTION_ENV = {
  image: 'BERTH_CONTAINER_IMAGE',
  mounts: 'BERTH_CONTAINER_MOUNTS',
  workdir: 'BERTH_CONTAINER_WORKDIR',
  env: 'BERTH_CONTAINER_ENV',
  name: 'BERTH_CONTAINER_NAME',
  mountHome: 'BERTH_CONTAINER_MOUNT_HOME',
  readOnly: 'BERTH_CONTAINER_READONLY',
  unshare: 'BERTH_CONTAINER_UNSHARE',
} as const;

const MAX_MOUNTS = 64;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** container paths berth owns or the kernel provides: a mount there would break the container */
const RESERVED_TARGETS = ['/', '/.berth', '/proc', '/sys', '/dev', '/etc/passwd', '/etc/group'];

function absolute(p: string, what: string, example: string): string {
  if (!p.startsWith('/')) throw new OptionError(`${what} '${p}' is not an absolute path; write it from /, e.g. ${example}`);
  if (p.split('/').some((c) => c === '..' || c === '.')) throw new OptionError(`${what} '${p}' contains '.' or '..'; write the path without them`);
  if (/[\0\n]/.test(p)) throw new OptionError(`${what} contains a NUL or newline`);
  const norm = path.posix.normalize(p);
  return norm.length > 1 ? norm.replace(/\/$/, '') : norm;
}

/** pyxis's relative mount source (one that starts with '.') made absolute from base; any other text as it is */
function relativeSource(src: string, base: string | undefined): string {
  if (base === undefined || !src.startsWith('.') || !base.startsWith('/')) return src;
  if (/[\0\n]/.test(src)) return src;
  return path.posix.resolve(base, src);
}

const FORM = "SRC[:DST[:FLAGS]] or tmpfs:DST (FLAGS joined with '+', e.g. ro+rslave)";

/** pyxis's mount flags that Docker or berth's rules cannot honour, and what to do instead */
const REFUSED_FLAGS: Record<string, string> = {
  shared: "shared propagation would carry mounts made in the container onto the host, which no job may do; use rslave (the host's mounts reach the container) or leave it out",
  rshared: "shared propagation would carry mounts made in the container onto the host, which no job may do; use rslave (the host's mounts reach the container) or leave it out",
  bind: "a non-recursive bind is not available; berth binds recursively (rbind), leave the flag out",
  unbindable: "Docker cannot make a bind unbindable; leave the flag out",
  runbindable: "Docker cannot make a bind unbindable; leave the flag out",
  nosuid: "berth cannot set it on a bind, and no setuid program gains anything in a berth container (no-new-privileges); leave the flag out",
  nodev: "berth cannot set it on a bind (a tmpfs is always nodev); a device under the source opens only as far as you could open it on the host; leave the flag out",
  noexec: "berth cannot set it on a mount; leave the flag out",
};

/** one KEY=VALUE flag of tmpfs:DST:FLAGS, checked against TMPFS_OPTIONS */
function tmpfsOption(spec: string, flag: string, seen: Map<string, string>): void {
  const eq = flag.indexOf('=');
  const key = flag.slice(0, eq);
  const value = flag.slice(eq + 1);
  const known = TMPFS_OPTIONS[key];
  const list = Object.keys(TMPFS_OPTIONS).map((k) => `${k}=`).join(', ');
  if (key === 'uid' || key === 'gid') throw new OptionError(`--container-mounts entry '${spec}': '${flag}': a tmpfs of a job is always its user's; leave ${key}= out`);
  if (REFUSED_TMPFS_OPTIONS[key]) throw new OptionError(`--container-mounts entry '${spec}': '${flag}': ${REFUSED_TMPFS_OPTIONS[key]}`);
  if (!known) throw new OptionError(`--container-mounts entry '${spec}': unknown tmpfs option '${flag}'; a tmpfs takes ro, rw, ${list}, joined with '+'`);
  if (!known.valid.test(value)) throw new OptionError(`--container-mounts entry '${spec}': '${flag}': ${key} is ${known.form}`);
  if (seen.has(key) && seen.get(key) !== value) throw new OptionError(`--container-mounts entry '${spec}' gives ${key}= twice; give it once`);
  seen.set(key, value);
}

function mountFlags(spec: string, text: string, tmpfs: boolean): { readOnly: boolean; propagation?: Propagation; tmpfsOptions?: string[] } {
  let readOnly: boolean | undefined;
  let propagation: Propagation | undefined;
  const options = new Map<string, string>();
  for (const flag of text.split('+')) {
    if (flag === '') throw new OptionError(`--container-mounts entry '${spec}' has an empty flag; join flags with single '+', e.g. ro+rslave`);
    if (tmpfs && flag.includes('=')) {
      tmpfsOption(spec, flag, options);
    } else if (!tmpfs && flag.includes('=')) {
      throw new OptionError(`--container-mounts entry '${spec}': '${flag}': KEY=VALUE options are for a tmpfs (tmpfs:DST:size=1g); a bind takes ro, rw, private, rprivate, slave, rslave`);
    } else if (flag === 'ro' || flag === 'rw') {
      if (readOnly !== undefined && readOnly !== (flag === 'ro')) throw new OptionError(`--container-mounts entry '${spec}' is both ro and rw; give one of them`);
      readOnly = flag === 'ro';
    } else if ((PROPAGATIONS as readonly string[]).includes(flag) || flag === 'rbind') {
      if (tmpfs) throw new OptionError(`--container-mounts entry '${spec}': '${flag}' applies to a bind, not a tmpfs; a tmpfs takes ro or rw`);
      if (flag === 'rbind') continue;
      if (propagation && propagation !== flag) throw new OptionError(`--container-mounts entry '${spec}' gives two propagations (${propagation}, ${flag}); give one`);
      propagation = flag as Propagation;
    } else if (REFUSED_FLAGS[flag] && !(tmpfs && (flag === 'nosuid' || flag === 'nodev'))) {
      throw new OptionError(`--container-mounts entry '${spec}': '${flag}': ${REFUSED_FLAGS[flag]}`);
    } else if (!(tmpfs && (flag === 'nosuid' || flag === 'nodev'))) {
      throw new OptionError(`--container-mounts entry '${spec}': unknown flag '${flag}'; berth takes ro, rw${tmpfs ? `, ${Object.keys(TMPFS_OPTIONS).map((k) => `${k}=`).join(', ')}` : ', private, rprivate, slave, rslave'}, joined with '+'`);
    }
  }
  const tmpfsOptions = Object.keys(TMPFS_OPTIONS).filter((k) => options.has(k)).map((k) => `${k}=${options.get(k)}`);
  return { readOnly: readOnly ?? false, ...(propagation ? { propagation } : {}), ...(tmpfsOptions.length ? { tmpfsOptions } : {}) };
}

/**
 * pyxis's forms, "SRC[:DST[:FLAGS]][,...]" and "tmpfs:DST[:FLAGS]": FLAGS joined with '+', ro or
 * rw (default rw) and a propagation that keeps mounts from reaching the host (private,
 * rprivate, slave, rslave), for a tmpfs its TMPFS_OPTIONS (size=, nr_inodes=, mode=);
 * DST defaults to SRC. Both absolute; DST not one of berth's or the
 * kernel's paths; no DST twice. With `base` (the directory sbatch, salloc or srun runs in, as
 * `berth submit-check` knows it), a SRC that starts with '.' is taken from there, as pyxis takes
 * it (./, ../data, ./input.txt); elsewhere (the prolog, berthd) only absolute paths arrive.
 */
export function parseMounts(text: string, base?: string): UserMount[] {
  const t = text.trim();
  if (!t) return [];
  const parts = t.split(',');
  if (parts.length > MAX_MOUNTS) throw new OptionError(`--container-mounts has ${parts.length} mounts; at most ${MAX_MOUNTS} are allowed`);
  const out: UserMount[] = [];
  for (const raw of parts) {
    const spec = raw.trim();
    if (!spec) throw new OptionError(`--container-mounts '${text}' has an empty entry; separate mounts with single commas: SRC:DST[:ro],SRC2:DST2`);
    const f = spec.split(':');
    if (f.slice(1).some((x) => x === '')) throw new OptionError(`--container-mounts entry '${spec}' has nothing after ':'; the form is ${FORM}, e.g. /scratch/me:/data`);
    if (f.length > 3) throw new OptionError(`--container-mounts entry '${spec}' has too many ':'; the form is ${FORM}`);
    const tmpfs = f[0] === TMPFS;
    if (tmpfs && f.length < 2) throw new OptionError(`--container-mounts entry '${spec}': a tmpfs needs the directory it goes at, e.g. tmpfs:/scratch`);
    const flags = mountFlags(spec, f[2] ?? 'rw', tmpfs);
    const source = tmpfs ? TMPFS : absolute(relativeSource(f[0]!, base), 'mount source', '/scratch/project');
    const target = absolute(f[1] || f[0]!, 'mount target', '/data');
    const reserved = RESERVED_TARGETS.find((r) => target === r || (r !== '/' && r !== '/etc/passwd' && r !== '/etc/group' && target.startsWith(r + '/')));
    if (reserved) throw new OptionError(`--container-mounts entry '${spec}': the target ${target} is ${reserved === '/' ? 'the root of the container' : `under ${reserved}, which berth or the kernel provides`}; mount somewhere else, e.g. /data`);
    if (out.some((m) => m.target === target)) throw new OptionError(`--container-mounts mounts two things at ${target}; give each mount its own target`);
    out.push({ source, target, ...flags });
  }
  return out;
}

/**
 * --container-workdir: a path in the container. A relative one is taken from the container's
 * root, as pyxis does (it changes directory after entering the container, where the process
 * starts in /): work → /work, ../ → /. '.' and '..' are resolved the same way.
 */
export function parseWorkdir(text: string): string {
  const t = text.trim();
  if (!t) return '';
  if (/[\0\n]/.test(t)) throw new OptionError('--container-workdir contains a NUL or newline');
  return path.posix.resolve('/', t);
}

export function parseEnvNames(text: string): string[] {
  if (!text.trim()) return [];
  const names = text.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new OptionError(`--container-env '${text}' has an empty name; separate names with single commas, e.g. --container-env=OMP_NUM_THREADS,MY_VAR`);
  for (const n of names) {
    if (!ENV_NAME.test(n)) throw new OptionError(`--container-env: '${n}' is not an environment variable name (letters, digits and _, not starting with a digit); give names only, e.g. --container-env=OMP_NUM_THREADS,MY_VAR`);
  }
  return [...new Set(names)];
}

/** "NAME[:FLAG]", FLAG one of pyxis's (auto, create, exec, no_exec); '' = none */
export function parseContainerName(text: string): { name: string; flag?: NameFlag } {
  const t = text.trim();
  if (!t) return { name: '' };
  const colon = t.indexOf(':');
  const name = colon < 0 ? t : t.slice(0, colon);
  const flag = colon < 0 ? '' : t.slice(colon + 1);
  if (!CONTAINER_NAME.test(name)) throw new OptionError(`--container-name '${t}' is not a valid name: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit${colon >= 0 ? ", then :FLAG" : ''}`);
  if (colon >= 0 && !(NAME_FLAGS as readonly string[]).includes(flag)) {
    const hint = flag === 'no_create' ? " (pyxis has no no_create: to only join a container that exists, use :exec)" : '';
    throw new OptionError(`--container-name '${t}': unknown flag '${flag}'${hint}; the flag is one of auto (join the container if it exists, else make it), create (make it; fail if it exists), exec (join it; fail if it does not exist) or no_exec`);
  }
  return { name, ...(colon >= 0 && flag !== 'auto' ? { flag: flag as NameFlag } : {}) };
}

/** The name as --container-name takes it: NAME or NAME:FLAG. */
export function formatContainerName(o: Pick<ContainerOptions, 'name' | 'nameFlag'>): string {
  return o.name && o.nameFlag ? `${o.name}:${o.nameFlag}` : o.name;
}

/** "NS[,NS...]", each one of UNSHARE_NAMESPACES (pyxis's names); '' = none; in UNSHARE_NAMESPACES's order, each once */
export function parseUnshare(text: string): UnshareNamespace[] {
  const t = text.trim();
  if (!t) return [];
  const accepted = UNSHARE_NAMESPACES.join(', ');
  const names = new Set<string>();
  for (const raw of t.split(',')) {
    const n = raw.trim();
    if (!n) throw new OptionError(`--container-unshare '${text}' has an empty namespace; separate namespaces with single commas, e.g. --container-unshare=net,uts`);
    if (!(UNSHARE_NAMESPACES as readonly string[]).includes(n)) throw new OptionError(`--container-unshare: unknown namespace '${n}'; berth takes ${accepted}, separated by commas`);
    names.add(n);
  }
  return UNSHARE_NAMESPACES.filter((n) => names.has(n));
}

/** 1/0, true/false, yes/no, on/off; '' = not set */
export function parseToggle(text: string | undefined, what: string): boolean | undefined {
  const t = (text ?? '').trim().toLowerCase();
  if (t === '') return undefined;
  if (['1', 'true', 'yes', 'on', 'y'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', 'n'].includes(t)) return false;
  throw new OptionError(`${what}='${text}' is not a yes/no value; use 1 or 0`);
}

/**
 * Reads the options from variables named `${prefix}BERTH_CONTAINER_*` (prefix 'SPANK_' in the
 * prolog); cwd: where relative mount sources are taken from (submit-check only).
 */
export function optionsFromEnv(env: Record<string, string | undefined>, prefix = '', cwd?: string): ContainerOptions {
  const get = (k: keyof typeof OPTION_ENV): string => env[prefix + OPTION_ENV[k]] ?? '';
  const { name, flag } = parseContainerName(get('name'));
  return {
    mounts: parseMounts(get('mounts'), cwd),
    workdir: parseWorkdir(get('workdir')),
    envNames: parseEnvNames(get('env')),
    name,
    ...(flag ? { nameFlag: flag } : {}),
    mountHome: parseToggle(get('mountHome'), prefix + OPTION_ENV.mountHome),
    readOnly: parseToggle(get('readOnly'), prefix + OPTION_ENV.readOnly),
    ...unshareField(parseUnshare(get('unshare'))),
  };
}

/** the unshare field of ContainerOptions: left out when there is nothing to unshare */
export function unshareField(ns: readonly UnshareNamespace[]): Pick<ContainerOptions, 'unshare'> {
  return ns.length ? { unshare: ns } : {};
}

/** One mount as --container-mounts takes it: SRC:DST, then ro, the propagation and a tmpfs's options joined with '+'. */
export function formatMount(m: UserMount): string {
  const flags = [...(m.readOnly ? ['ro'] : []), ...(m.propagation ? [m.propagation] : []), ...(m.tmpfsOptions ?? [])];
  return `${m.source}:${m.target}${flags.length ? `:${flags.join('+')}` : ''}`;
}

export function formatMounts(mounts: readonly UserMount[]): string {
  return mounts.map(formatMount).join(',');
}

/** The options as the variables optionsFromEnv reads, leaving out what is not set. */
export function optionsToEnv(o: ContainerOptions): Record<string, string> {
  const out: Record<string, string> = {};
  if (o.mounts.length) out[OPTION_ENV.mounts] = formatMounts(o.mounts);
  if (o.workdir) out[OPTION_ENV.workdir] = o.workdir;
  if (o.envNames.length) out[OPTION_ENV.env] = o.envNames.join(',');
  if (o.name) out[OPTION_ENV.name] = formatContainerName(o);
  if (o.mountHome !== undefined) out[OPTION_ENV.mountHome] = o.mountHome ? '1' : '0';
  if (o.readOnly !== undefined) out[OPTION_ENV.readOnly] = o.readOnly ? '1' : '0';
  if (o.unshare?.length) out[OPTION_ENV.unshare] = o.unshare.join(',');
  return out;
}
