// Checks a JobPrologue request before anything is made for it.
import path from 'node:path';
import { BerthError } from '../../shared/errors';
import { type ContainerOptions, formatContainerName, formatMounts, OptionError, parseContainerName, parseEnvNames, parseMounts, parseUnshare, parseWorkdir } from '../../shared/container-options';
import { isJobId } from '../../shared/ids';

export interface PrologueInput {
  jobId: string;
  uid: number;
  gid: number;
  user: string;
  image: string;
  /** the reference the user wrote, when `image` was pinned to a digest at submit */
  requestedImage?: string;
  workDir: string;
  cpus: number;
  memoryBytes: number;
  /** the user's --container-* options */
  options?: ContainerOptions;
  /** Slurm account and partition, for accounting */
  account?: string;
  partition?: string;
}

export function checkPrologueRequest(req: PrologueInput): void {
  const bad = (msg: string): never => {
    throw new BerthError('INVALID_REQUEST', `job ${req.jobId || '(no id)'}: ${msg}`);
  };
  if (!isJobId(req.jobId)) bad(`job id '${req.jobId}' is not a Slurm job id (digits only)`);
  if (req.uid === 0 || req.gid === 0) {
    throw new BerthError('ROOT_JOB_REFUSED', `job ${req.jobId}: container jobs may not run as root (uid ${req.uid}, gid ${req.gid}); submit the job as an ordinary user`);
  }
  if (!req.user) bad('the job has no user name (SLURM_JOB_USER)');
  if (!req.image) bad('no container image was requested');
  if (req.options) {
    // the same rules as at submit: a request that did not come through the plugin is held to them too
    try {
      const o = req.options;
      parseMounts(formatMounts(o.mounts));
      // submit-check makes a relative --container-workdir absolute (pyxis's: from /); here it must already be
      if (o.workdir && parseWorkdir(o.workdir) !== o.workdir.replace(/(.)\/+$/, '$1')) {
        throw new OptionError(`--container-workdir '${o.workdir}' is not an absolute path without '.' or '..', as berth submit-check writes it`);
      }
      parseEnvNames(o.envNames.join(','));
      parseContainerName(formatContainerName(o));
      parseUnshare((o.unshare ?? []).join(','));
    } catch (err) {
      if (err instanceof OptionError) throw new BerthError('OPTIONS_INVALID', `job ${req.jobId}: ${err.message}`);
      throw err;
    }
  }
  if (req.workDir && (!path.isAbsolute(req.workDir) || path.normalize(req.workDir) !== req.workDir.replace(/\/+$/, '') && req.workDir !== '/')) {
    // the user's own --chdir (Slurm keeps it as written): the job's mistake, never the node's
    throw new BerthError('OPTIONS_INVALID', `job ${req.jobId}: working directory '${req.workDir}' must be an absolute, normalized path; give sbatch or srun --chdir a path without '.', '..' or '//'`);
  }
}
