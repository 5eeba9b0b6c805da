// Checks a JobPrologue request before anything is made for it.
import path from 'node:path';
import { BerthError } from '../../shared/errors';

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
}

export function checkPrologueRequest(req: PrologueInput): void {
  const bad = (msg: string): never => {
    throw new BerthError('INVALID_REQUEST', `job ${req.jobId || '(no id)'}: ${msg}`);
  };
  if (!/^[0-9]+$/.test(req.jobId)) bad(`job id '${req.jobId}' is not a Slurm job id (digits only)`);
  if (req.uid === 0 || req.gid === 0) {
    throw new BerthError('ROOT_JOB_REFUSED', `job ${req.jobId}: container jobs may not run as root (uid ${req.uid}, gid ${req.gid}); submit the job as an ordinary user`);
  }
  if (!req.user) bad('the job has no user name (SLURM_JOB_USER)');
  if (!req.image) bad('no container image was requested');
  if (req.workDir && (!path.isAbsolute(req.workDir) || path.normalize(req.workDir) !== req.workDir.replace(/\/+$/, '') && req.workDir !== '/')) {
    bad(`working directory '${req.workDir}' must be an absolute, normalized path`);
  }
}
