// The SPANK plugin's options, listed once. The plugin's C table (scripts/native/berth_options.h)
// is generated from this list by scripts/gen-spank-options.ts (`npm run gen`); a unit test
// keeps the checked-in header equal to what this list makes. Each option sets one variable
// (OPTION_ENV, BATCH_ENV), which is also what the option falls back to when it is not given,
// what `berth submit-check` reads, and, prefixed with SPANK_, what the prolog sees.
import { OPTION_ENV } from './container-options';

/**
 * where sbatch's batch script runs: 1 in the job's container (the default with --container-image,
 * as pyxis runs it), 0 on the host (--no-container-batch). `berth submit-check` always prints it
 * for a job with an image, so a job keeps where its script runs whatever the default becomes.
 */
export const BATCH_ENV = 'BERTH_CONTAINER_BATCH';
/** --container-save=IMAGE: at the job's end its container is committed and pushed to IMAGE (the job's, not a step's) */
export const SAVE_ENV = 'BERTH_CONTAINER_SAVE';
/** pyxis's options berth takes so that pyxis scripts run, and what it does with them (berth submit-check) */
export const PYXIS_ENV = {
  /** --container-remap-root: refused (berth never runs a job's user as root); --no-container-remap-root: what berth does */
  remapRoot: 'BERTH_CONTAINER_REMAP_ROOT',
  /** --container-entrypoint: refused (berth does not run the image's ENTRYPOINT); --no-container-entrypoint: what berth does */
  entrypoint: 'BERTH_CONTAINER_ENTRYPOINT',
  /** --container-entrypoint-log: the entrypoint's output; nothing to show without an entrypoint */
  entrypointLog: 'BERTH_CONTAINER_ENTRYPOINT_LOG',
} as const;

/**
 * pyxis's environment variables for its options, each the alias of berth's variable (`invert`:
 * the opposite flag's): an option on the command line wins, then BERTH_CONTAINER_*, then
 * PYXIS_CONTAINER_*.
 */
export const PYXIS_ALIASES: readonly { pyxis: string; env: string; invert?: true }[] = Object.freeze([
  { pyxis: 'PYXIS_CONTAINER_IMAGE', env: OPTION_ENV.image },
  { pyxis: 'PYXIS_CONTAINER_MOUNTS', env: OPTION_ENV.mounts },
  { pyxis: 'PYXIS_CONTAINER_WORKDIR', env: OPTION_ENV.workdir },
  { pyxis: 'PYXIS_CONTAINER_ENV', env: OPTION_ENV.env },
  { pyxis: 'PYXIS_CONTAINER_NAME', env: OPTION_ENV.name },
  { pyxis: 'PYXIS_CONTAINER_SAVE', env: SAVE_ENV },
  { pyxis: 'PYXIS_CONTAINER_MOUNT_HOME', env: OPTION_ENV.mountHome },
  { pyxis: 'PYXIS_CONTAINER_READONLY', env: OPTION_ENV.readOnly },
  { pyxis: 'PYXIS_CONTAINER_WRITABLE', env: OPTION_ENV.readOnly, invert: true },
  { pyxis: 'PYXIS_CONTAINER_UNSHARE', env: OPTION_ENV.unshare },
  { pyxis: 'PYXIS_CONTAINER_REMAP_ROOT', env: PYXIS_ENV.remapRoot },
  { pyxis: 'PYXIS_CONTAINER_ENTRYPOINT', env: PYXIS_ENV.entrypoint },
  { pyxis: 'PYXIS_CONTAINER_ENTRYPOINT_LOG', env: PYXIS_ENV.entrypointLog },
]);

/** what the user wrote for --container-image, beside the pinned image submit-check prints */
export const REQUESTED_IMAGE_ENV = 'BERTH_CONTAINER_IMAGE_REQUESTED';

export interface SpankOption {
  /** the option, without the leading -- */
  readonly name: string;
  /** the variable it sets */
  readonly env: string;
  /** what its value looks like in srun --help; absent for a flag */
  readonly arg?: string;
  /** for a flag: what it sets the variable to */
  readonly sets?: '0' | '1';
  /** srun --help's text, without the "[berth] " before it and the "(env ...)" after it */
  readonly help: string;
}

/** in the order srun --help lists them; a variable's two flags are named in this order when given together */
export const SPANK_OPTIONS: readonly SpankOption[] = Object.freeze([
  { name: 'container-image', env: OPTION_ENV.image, arg: 'IMAGE', help: 'run in a Docker container made from IMAGE' },
  { name: 'container-mounts', env: OPTION_ENV.mounts, arg: 'SRC[:DST[:ro]][,...]', help: 'bind-mount host paths into the container' },
  { name: 'container-workdir', env: OPTION_ENV.workdir, arg: 'PATH', help: 'working directory inside the container' },
  { name: 'container-env', env: OPTION_ENV.env, arg: 'NAME[,...]', help: "host variables that win over the image's" },
  { name: 'container-name', env: OPTION_ENV.name, arg: 'NAME', help: 'name the container; later steps of the job join it by name' },
  { name: 'container-mount-home', env: OPTION_ENV.mountHome, sets: '1', help: 'bind-mount your home directory' },
  { name: 'no-container-mount-home', env: OPTION_ENV.mountHome, sets: '0', help: 'do not bind-mount your home directory' },
  { name: 'container-writable', env: OPTION_ENV.readOnly, sets: '0', help: "writable root file system, but its files stay root's: install into your home or a mount instead" },
  { name: 'container-readonly', env: OPTION_ENV.readOnly, sets: '1', help: 'read-only container root file system' },
  { name: 'container-unshare', env: OPTION_ENV.unshare, arg: 'NS[,NS...]', help: 'namespaces of the container\'s own: net (loopback only), ipc, uts' },
  { name: 'container-batch', env: BATCH_ENV, sets: '1', help: "sbatch: run the batch script in the job's container (the default with --container-image)" },
  { name: 'no-container-batch', env: BATCH_ENV, sets: '0', help: 'sbatch: run the batch script on the host; its srun steps that name the image join the container' },
  { name: 'container-save', env: SAVE_ENV, arg: 'IMAGE', help: "at the job's end, push its container to IMAGE with your own registry login" },
  { name: 'container-remap-root', env: PYXIS_ENV.remapRoot, sets: '1', help: 'pyxis: refused, berth runs your containers as you' },
  { name: 'no-container-remap-root', env: PYXIS_ENV.remapRoot, sets: '0', help: 'pyxis: accepted, berth never remaps you to root' },
  { name: 'container-entrypoint', env: PYXIS_ENV.entrypoint, sets: '1', help: "pyxis: refused, berth does not run the image's ENTRYPOINT" },
  { name: 'no-container-entrypoint', env: PYXIS_ENV.entrypoint, sets: '0', help: "pyxis: accepted, berth does not run the image's ENTRYPOINT" },
  { name: 'container-entrypoint-log', env: PYXIS_ENV.entrypointLog, sets: '1', help: 'pyxis: accepted, no entrypoint output to show' },
]);

/** the variables the options set, each once, in the order of SPANK_OPTIONS */
export const SPANK_OPTION_VARS: readonly string[] = Object.freeze([...new Set(SPANK_OPTIONS.map((o) => o.env))]);

/**
 * What the plugin hands `berth hook step-prolog` for a step's own container (StepPrologue):
 * what submit-check printed for the step, but --container-batch and --container-save, which are the job's.
 */
export const STEP_PROLOG_VARS: readonly string[] = Object.freeze([
  OPTION_ENV.image, REQUESTED_IMAGE_ENV, ...SPANK_OPTION_VARS.filter((v) => v !== OPTION_ENV.image && v !== BATCH_ENV && v !== SAVE_ENV && !pyxisOnly(v)),
]);

function pyxisOnly(env: string): boolean {
  return (Object.values(PYXIS_ENV) as string[]).includes(env);
}

/** The options that need --container-image, as submit-check names them: those that give a value or turn something on. */
export function optionsNeedingImage(): string[] {
  return SPANK_OPTIONS.filter((o) => o.env !== OPTION_ENV.image && !pyxisOnly(o.env) && (o.arg !== undefined || o.sets === '1')).map((o) => `--${o.name}`);
}

/** The variable Slurm itself passes option NAME's value to the prolog in (the plugin is SPANK_PLUGIN(berth, 1)). */
export function slurmOptionVar(name: string): string {
  return `SPANK__SLURM_SPANK_OPTION_berth_${name.replaceAll('-', '_')}`;
}
