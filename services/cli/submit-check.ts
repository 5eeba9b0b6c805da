// `berth submit-check`: what the SPANK plugin runs, as the submitting user, when sbatch,
// salloc or srun is given --container-* options (or their BERTH_CONTAINER_* variables; the
// plugin passes the values that won in those variables). It checks every value, pins the
// image to its digest (`berth resolve`) and checks that the user can reach each mount source,
// then prints NAME=VALUE lines that the plugin hands to the prolog (SPANK_NAME there).
// A bad value exits 1 with one line saying what was wrong and what to do.
import os from 'node:os';
import { type ContainerOptions, OPTION_ENV, OptionError, optionsFromEnv, optionsToEnv, parseToggle } from '../shared/container-options';
import { reachablePath } from '../shared/path-access';
import { runResolve, type ResolveOptions } from './resolve';

export const REQUESTED_IMAGE_ENV = 'BERTH_CONTAINER_IMAGE_REQUESTED';
/** sbatch --container-batch: the batch script runs in the job's container */
export const BATCH_ENV = 'BERTH_CONTAINER_BATCH';

export interface SubmitCheckDeps {
  resolve?: ResolveOptions;
  who?: { uid: number; gids: number[] };
}

function anyOptionSet(o: ContainerOptions): boolean {
  return o.mounts.length > 0 || o.workdir !== '' || o.envNames.length > 0 || o.name !== '' || o.mountHome !== undefined || o.readOnly !== undefined;
}

export async function runSubmitCheck(env: Record<string, string | undefined>, out: (s: string) => void, err: (s: string) => void, deps: SubmitCheckDeps = {}): Promise<number> {
  let opts: ContainerOptions;
  let batch: boolean | undefined;
  try {
    opts = optionsFromEnv(env);
    batch = parseToggle(env[BATCH_ENV], BATCH_ENV);
    const who = deps.who ?? { uid: process.getuid?.() ?? 0, gids: [process.getgid?.() ?? 0, ...(process.getgroups?.() ?? [])] };
    opts.mounts = opts.mounts.map((m) => ({ ...m, source: reachablePath(m.source, who, `--container-mounts source`) }));
    if (opts.mountHome && !os.userInfo().homedir) throw new OptionError('--container-mount-home: you have no home directory');
  } catch (e) {
    if (!(e instanceof OptionError)) throw e;
    err(`berth: ${e.message}\n`);
    return 1;
  }
  const image = (env[OPTION_ENV.image] ?? '').trim();
  if (!image && opts.name && env.SLURM_JOB_ID) {
    // srun --container-name=NAME inside a job: the step joins the job's container of that name, or one a step made
    out(Object.entries(optionsToEnv(opts)).map(([k, v]) => `${k}=${v}\n`).join(''));
    return 0;
  }
  if (!image) {
    if (anyOptionSet(opts) || batch) {
      err(`berth: --container-mounts, --container-workdir, --container-env, --container-name, --container-mount-home, --container-readonly and --container-batch need --container-image (or ${OPTION_ENV.image}); add the image the job should run in\n`);
      return 1;
    }
    return 0;
  }
  let pinned = '';
  const code = await runResolve(image, (s) => (pinned += s), err, deps.resolve);
  if (code !== 0) return code;
  const lines = { [OPTION_ENV.image]: pinned.trim(), [REQUESTED_IMAGE_ENV]: image, ...optionsToEnv(opts), ...(batch ? { [BATCH_ENV]: '1' } : {}) };
  out(Object.entries(lines).map(([k, v]) => `${k}=${v}\n`).join(''));
  return 0;
}
