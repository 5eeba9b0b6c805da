// Orphaned jobs: berthd holds a container for a job that Slurm no longer runs on this node
// (an epilog that never came: slurmd crash, node reboot, hook timeout). Once past a grace
// period after its start, such a job is ended as the epilogue would end it. When Slurm
// cannot be asked, nothing is removed.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { JobService } from '../jobs/job-service';
import type { Logger } from '../logger';

const run = promisify(execFile);

export interface ActiveJobSource {
  /** Job ids Slurm runs (or is ending) on node; undefined when Slurm could not be asked. */
  activeJobs(node: string): Promise<Set<string> | undefined>;
}

export class SqueueJobSource implements ActiveJobSource {
  async activeJobs(node: string): Promise<Set<string> | undefined> {
    try {
      const { stdout } = await run('squeue', ['--noheader', '--format=%A', `--nodelist=${node}`, '--states=CONFIGURING,RUNNING,COMPLETING,SUSPENDED,STOPPED'], { timeout: 15_000 });
      return new Set(stdout.split('\n').map((l) => l.trim()).filter(Boolean));
    } catch {
      return undefined;
    }
  }
}

export interface OrphanSweep {
  checked: number;
  orphans: string[];
  removed: string[];
  skipped?: string;
}

export async function sweepOrphans(opts: {
  jobs: JobService;
  source: ActiveJobSource;
  node: string;
  graceMs: number;
  dryRun: boolean;
  log: Logger;
  now?: Date;
}): Promise<OrphanSweep> {
  const now = (opts.now ?? new Date()).getTime();
  const active = await opts.source.activeJobs(opts.node);
  const known = opts.jobs.list();
  if (!active) {
    opts.log.warn('orphan sweep skipped: Slurm could not be asked which jobs run here');
    return { checked: known.length, orphans: [], removed: [], skipped: 'slurm unavailable' };
  }
  const orphans = known.filter((j) => !active.has(j.jobId) && now - Date.parse(j.startTime || '1970-01-01') > opts.graceMs).map((j) => j.jobId);
  const removed: string[] = [];
  for (const jobId of orphans) {
    if (opts.dryRun) {
      opts.log.info('orphan job (dry run: kept)', { job: jobId });
      continue;
    }
    try {
      await opts.jobs.epilogue(jobId);
      removed.push(jobId);
      opts.log.warn('ended orphan job: Slurm no longer runs it on this node', { job: jobId });
    } catch (err) {
      opts.log.error('could not end orphan job', { job: jobId, error: String(err) });
    }
  }
  return { checked: known.length, orphans, removed };
}
