// The --container-* options of sbatch, salloc and srun (named as pyxis names them), their
// environment-variable equivalents, and the rules every value must follow. The same checks
// run at submit (`berth submit-check`, as the user), in the prolog hook and in berthd, so a
// value berthd would refuse fails the submission in the user's terminal instead.
import path from 'node:path';

export interface UserMount {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface ContainerOptions {
  mounts: UserMount[];
  /** working directory inside the container; '' = the step's own (the client's cwd) */
  workdir: string;
  /** host variables that reach the container's steps, overriding the image's */
  envNames: string[];
  /** a name for the container, kept for the job's steps; '' = none */
  name: string;
  /** bind the user's home directory; undefined = the site's default */
  mountHome?: boolean;
  /** read-only root file system; undefined = the site's default (writable) */
  readOnly?: boolean;
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

/**
 * "SRC[:DST[:FLAGS]][,...]": FLAGS is ro or rw (default rw); DST defaults to SRC.
 * Both absolute; DST not one of berth's or the kernel's paths; no DST twice.
 */
export function parseMounts(text: string): UserMount[] {
  const t = text.trim();
  if (!t) return [];
  const parts = t.split(',');
  if (parts.length > MAX_MOUNTS) throw new OptionError(`--container-mounts has ${parts.length} mounts; at most ${MAX_MOUNTS} are allowed`);
  const out: UserMount[] = [];
  for (const raw of parts) {
    const spec = raw.trim();
    if (!spec) throw new OptionError(`--container-mounts '${text}' has an empty entry; separate mounts with single commas: SRC:DST[:ro],SRC2:DST2`);
    const f = spec.split(':');
    if (f.slice(1).some((x) => x === '')) throw new OptionError(`--container-mounts entry '${spec}' has nothing after ':'; the form is SRC[:DST[:ro|rw]], e.g. /scratch/me:/data`);
    if (f.length > 3) throw new OptionError(`--container-mounts entry '${spec}' has too many ':'; the form is SRC[:DST[:ro|rw]]`);
    const flags = f[2] ?? 'rw';
    if (flags !== 'ro' && flags !== 'rw') throw new OptionError(`--container-mounts entry '${spec}': unknown flag '${flags}'; use ro (read-only) or rw`);
    const source = absolute(f[0]!, 'mount source', '/scratch/project');
    const target = absolute(f[1] || f[0]!, 'mount target', '/data');
    const reserved = RESERVED_TARGETS.find((r) => target === r || (r !== '/' && r !== '/etc/passwd' && r !== '/etc/group' && target.startsWith(r + '/')));
    if (reserved) throw new OptionError(`--container-mounts entry '${spec}': the target ${target} is ${reserved === '/' ? 'the root of the container' : `under ${reserved}, which berth or the kernel provides`}; mount somewhere else, e.g. /data`);
    if (out.some((m) => m.target === target)) throw new OptionError(`--container-mounts mounts two things at ${target}; give each mount its own target`);
    out.push({ source, target, readOnly: flags === 'ro' });
  }
  return out;
}

export function parseWorkdir(text: string): string {
  const t = text.trim();
  return t ? absolute(t, '--container-workdir', '/work') : '';
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

export function parseContainerName(text: string): string {
  const t = text.trim();
  if (t && !CONTAINER_NAME.test(t)) throw new OptionError(`--container-name '${t}' is not a valid name: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit`);
  return t;
}

/** 1/0, true/false, yes/no, on/off; '' = not set */
export function parseToggle(text: string | undefined, what: string): boolean | undefined {
  const t = (text ?? '').trim().toLowerCase();
  if (t === '') return undefined;
  if (['1', 'true', 'yes', 'on', 'y'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', 'n'].includes(t)) return false;
  throw new OptionError(`${what}='${text}' is not a yes/no value; use 1 or 0`);
}

/** Reads the options from variables named `${prefix}BERTH_CONTAINER_*` (prefix 'SPANK_' in the prolog). */
export function optionsFromEnv(env: Record<string, string | undefined>, prefix = ''): ContainerOptions {
  const get = (k: keyof typeof OPTION_ENV): string => env[prefix + OPTION_ENV[k]] ?? '';
  return {
    mounts: parseMounts(get('mounts')),
    workdir: parseWorkdir(get('workdir')),
    envNames: parseEnvNames(get('env')),
    name: parseContainerName(get('name')),
    mountHome: parseToggle(get('mountHome'), prefix + OPTION_ENV.mountHome),
    readOnly: parseToggle(get('readOnly'), prefix + OPTION_ENV.readOnly),
  };
}

export function formatMounts(mounts: readonly UserMount[]): string {
  return mounts.map((m) => `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`).join(',');
}

/** The options as the variables optionsFromEnv reads, leaving out what is not set. */
export function optionsToEnv(o: ContainerOptions): Record<string, string> {
  const out: Record<string, string> = {};
  if (o.mounts.length) out[OPTION_ENV.mounts] = formatMounts(o.mounts);
  if (o.workdir) out[OPTION_ENV.workdir] = o.workdir;
  if (o.envNames.length) out[OPTION_ENV.env] = o.envNames.join(',');
  if (o.name) out[OPTION_ENV.name] = o.name;
  if (o.mountHome !== undefined) out[OPTION_ENV.mountHome] = o.mountHome ? '1' : '0';
  if (o.readOnly !== undefined) out[OPTION_ENV.readOnly] = o.readOnly ? '1' : '0';
  return out;
}
