// `berth submit-check`: what the SPANK plugin runs, as the submitting user, when sbatch,
// salloc or srun is given --container-* options (or their BERTH_CONTAINER_* variables; the
// plugin passes the values that won in those variables). It checks every value, pins the
// image to its digest (`berth resolve`) and checks that the user can reach each mount source,
// then prints NAME=VALUE lines that the plugin hands to the prolog (SPANK_NAME there), and
// `berth: warning: ` lines that the plugin shows the user.
// Mounts and the image's registry are judged by the site rules (/etc/berth/site.json, the
// file berthd reads) with the functions berthd uses, so what berthd would refuse at the
// prolog is refused here. A bad value exits 1 with one line saying what was wrong and what to do.
import os from 'node:os';
import { type ContainerOptions, OPTION_ENV, OptionError, optionsFromEnv, optionsToEnv, parseToggle } from './container-options';
import { DEFAULT_SITE_RULES_FILE, loadSiteRules, type SiteRules, SiteRulesError } from './site-rules';
import { judgeImageRegistry, judgeMounts, judgeSaveTarget, type PathProbe, REAL_PATHS } from './site-rules-check';
import { BATCH_ENV, optionsNeedingImage, PYXIS_ENV, REQUESTED_IMAGE_ENV, SAVE_ENV } from './spank-options';
import { type CredentialLookup, fileCredentials, registryKey } from './images/credentials';
import path from 'node:path';
import { runResolve, type ResolveOptions } from './images/resolve';

/** the directory the submitting sbatch, salloc or srun runs in, as the SPANK plugin gives it */
export const SUBMIT_CWD_ENV = 'BERTH_SUBMIT_CWD';

export interface SubmitCheckDeps {
  resolve?: ResolveOptions;
  who?: { uid: number; gids: number[] };
  /** the site rules; read from siteRulesFile (/etc/berth/site.json) when not given */
  siteRules?: SiteRules;
  siteRulesFile?: string;
  probe?: PathProbe;
  /** the user's home directory (default: the passwd entry's) */
  home?: string;
  /** the user's name (default: the passwd entry's) */
  userName?: string;
  /** the user's own registry logins (default: ~/.docker/config.json) */
  logins?: CredentialLookup;
  /**
   * where relative mount sources (./data) are taken from when the plugin does not say
   * (BERTH_SUBMIT_CWD, the directory sbatch, salloc or srun runs in); none: they are refused
   */
  cwd?: string;
}

/**
 * --container-save=IMAGE: the job's, allowed by the site for this user, and with a login of the
 * user's own for its registry (berthd pushes with that login only). Returns REGISTRY/PATH:TAG.
 */
async function checkSave(save: string, env: Record<string, string | undefined>, rules: SiteRules, who: { uid: number }, deps: SubmitCheckDeps): Promise<string> {
  const target = judgeSaveTarget(save, deps.userName ?? os.userInfo().username, rules);
  const registry = registryKey(target.slice(0, target.indexOf('/')));
  const logins = deps.logins ?? fileCredentials(path.join(deps.home ?? os.userInfo().homedir, '.docker', 'config.json'), who.uid);
  let login;
  try {
    login = await logins(registry);
  } catch (e) {
    throw new OptionError(`--container-save=${save}: ${(e as Error).message}`);
  }
  if (!login) throw new OptionError(`--container-save=${save}: you have no login for ${registry}; run docker login ${registry} first (berth pushes the container with your own login)`);
  return target;
}

function anyOptionSet(o: ContainerOptions): boolean {
  return o.mounts.length > 0 || o.workdir !== '' || o.envNames.length > 0 || o.name !== '' || o.mountHome !== undefined || o.readOnly !== undefined || (o.unshare?.length ?? 0) > 0;
}

/**
 * pyxis's options that berth takes: their "no" forms are what berth does anyway; their "yes"
 * forms cannot be had, and say why and what to do instead.
 */
function refusePyxisOnly(env: Record<string, string | undefined>, uid: number): void {
  if (parseToggle(env[PYXIS_ENV.remapRoot], PYXIS_ENV.remapRoot)) {
    throw new OptionError(`--container-remap-root (PYXIS_CONTAINER_REMAP_ROOT=1): berth runs your containers as you (uid ${uid}), never as root inside them, so that nothing in an image can act as root on the node's files. ` +
      "To install software, build it into the image where you are root (docker build, then docker push to your site's registry), or install it as yourself into a directory you mount (--container-mounts) or your home (pip install --user, conda, spack); drop the option");
  }
  if (parseToggle(env[PYXIS_ENV.entrypoint], PYXIS_ENV.entrypoint)) {
    throw new OptionError("--container-entrypoint (PYXIS_CONTAINER_ENTRYPOINT=1): berth does not run the image's ENTRYPOINT before a step (pyxis does not by default either); name it in the step's command instead, e.g. srun --container-image=IMAGE /path/to/entrypoint.sh CMD, and drop the option");
  }
  parseToggle(env[PYXIS_ENV.entrypointLog], PYXIS_ENV.entrypointLog);
}

/**
 * What --container-writable gives (pyxis users expect to install into the image there), said at
 * submit: a line the plugin prints to the user's terminal, not a value for the job.
 */
export const WRITABLE_WARNING = "berth: warning: --container-writable: the container's root file system is writable, but its files and directories stay root's, as in the image, and you are not root in it: " +
  'you can write only where the image lets everyone (such as /tmp), and what you write goes with the container. ' +
  'To install software use your home (mounted unless --no-container-mount-home: pip install --user, conda or spack there), a directory of yours given with --container-mounts, ' +
  'or an image you build (docker build and docker push, outside jobs); see docs/users.md, "Installing software"';

export async function runSubmitCheck(env: Record<string, string | undefined>, out: (s: string) => void, err: (s: string) => void, deps: SubmitCheckDeps = {}): Promise<number> {
  let opts: ContainerOptions;
  let batch: boolean | undefined;
  let saveTarget = '';
  const image = (env[OPTION_ENV.image] ?? '').trim();
  const save = (env[SAVE_ENV] ?? '').trim();
  // BERTH_SUBMIT_FOR: the plugin says whether the check is for a new job (sbatch, salloc, or an
  // srun making one, even from inside another job) or for a step of a running job
  const forStep = env.BERTH_SUBMIT_FOR ? env.BERTH_SUBMIT_FOR === 'step' : Boolean(env.SLURM_JOB_ID);
  try {
    opts = optionsFromEnv(env, '', env[SUBMIT_CWD_ENV] || deps.cwd);
    batch = parseToggle(env[BATCH_ENV], BATCH_ENV);
    const who = deps.who ?? { uid: process.getuid?.() ?? 0, gids: [process.getgid?.() ?? 0, ...(process.getgroups?.() ?? [])] };
    refusePyxisOnly(env, who.uid);
    if (opts.nameFlag === 'exec' && !forStep) {
      throw new OptionError(`--container-name=${opts.name}:exec joins a container that exists, and a new job has none yet; drop :exec here (the job's container gets the name), and give it to the sruns inside the job that join it`);
    }
    if (save && forStep) {
      throw new OptionError(`--container-save=${save}: berth saves the job's container when the job ends; give the option to the sbatch, salloc or srun that makes the job (a step's own container is not saved)`);
    }
    if (image || opts.mounts.length) {
      const rules = deps.siteRules ?? loadSiteRules(deps.siteRulesFile ?? DEFAULT_SITE_RULES_FILE);
      if (image) judgeImageRegistry(image, rules);
      opts.mounts = judgeMounts(opts.mounts, rules, who, [], deps.probe);
      if (image && save) saveTarget = await checkSave(save, env, rules, who, deps);
    }
    // home is refused at the prolog only when asked for explicitly (the site's default skips a missing one)
    if (opts.mountHome) {
      const home = deps.home ?? os.userInfo().homedir;
      if (!home) throw new OptionError('--container-mount-home: you have no home directory');
      if (home !== '/') (deps.probe ?? REAL_PATHS).reachable(home, who, '--container-mount-home: your home directory');
    }
  } catch (e) {
    if (e instanceof SiteRulesError) {
      err(`berth: container jobs cannot be checked on this host (tell your site's admins): ${e.message.split('\n').join('; ')}\n`);
      return 1;
    }
    if (!(e instanceof OptionError)) throw e;
    err(`berth: ${e.message}\n`);
    return 1;
  }
  if (!image && opts.name && forStep) {
    // srun --container-name=NAME inside a job: the step joins the job's container of that name, or one a step made
    out(Object.entries(optionsToEnv(opts)).map(([k, v]) => `${k}=${v}\n`).join(''));
    return 0;
  }
  if (!image) {
    if (anyOptionSet(opts) || batch || save) {
      const named = optionsNeedingImage();
      err(`berth: ${named.slice(0, -1).join(', ')} and ${named.at(-1)} need --container-image (or ${OPTION_ENV.image}); add the image the job should run in\n`);
      return 1;
    }
    return 0;
  }
  let pinned = '';
  const code = await runResolve(image, (s) => (pinned += s), err, deps.resolve);
  if (code !== 0) return code;
  // where the batch script runs, always written out: in the container unless --no-container-batch (pyxis's default)
  const lines = { [OPTION_ENV.image]: pinned.trim(), [REQUESTED_IMAGE_ENV]: image, ...optionsToEnv(opts), [BATCH_ENV]: batch === false ? '0' : '1', ...(saveTarget ? { [SAVE_ENV]: saveTarget } : {}) };
  out(Object.entries(lines).map(([k, v]) => `${k}=${v}\n`).join(''));
  if (opts.readOnly === false) out(`${WRITABLE_WARNING}\n`);
  return 0;
}
