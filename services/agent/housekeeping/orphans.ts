// Jobs berthd holds containers for that Slurm no longer runs on this node: an epilog that never
// came (slurmd crash, node reboot, hook timeout), or one that ran while berthd was away. They
// are ended as the epilogue would end them, their accounting marked SettledLate:
//   - at berthd's start, before it serves (reconcile): at once, no grace period;
//   - by the periodic orphan sweep, a backstop: only jobs older than the grace period.
// Both read the engine's containers by berth's labels (containers/berth-containers.ts), so a job
// whose only containers are step containers (never in the table) or users' containers is found
// too, and the job table for jobs whose containers are gone. Only containers with
// berth's seal (containers/seal.ts) are trusted as berth's job and step containers; users'
// containers carry io.berth.job.id and io.berth.role=user (the job's endpoint adds them, the
// policy requires them). Epilogs the hook spooled because berthd could not be reached
// (shared/epilog-spool.ts) are settled first: Slurm ran the job's epilog here, so the job is
// over whatever Slurm says now. When Slurm cannot be asked, nothing else is removed.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { errorMessage } from '../../shared/errors';
import { readSpooledEpilogs, removeSpooledEpilog } from '../../shared/epilog-spool';
import { listBerthContainers } from '../containers/berth-containers';
import type { ContainerSeal } from '../containers/seal';
import type { ContainerEngine } from '../docker/engine';
import type { EpilogueOptions, JobService } from '../jobs/job-service';
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
  /** spooled epilogs settled (job ids) */
  settled: string[];
  skipped?: string;
}

export interface ReconcileOptions {
  jobs: Pick<JobService, 'list' | 'get' | 'epilogue'>;
  source: ActiveJobSource;
  node: string;
  graceMs: number;
  dryRun: boolean;
  log: Logger;
  now?: Date;
  /** the engine, to find jobs by their containers' labels (containers/berth-containers.ts) */
  engine: Pick<ContainerEngine, 'listByLabel'>;
  /** berth's seal: without a valid one a job or step container is not trusted as berth's */
  seal?: Pick<ContainerSeal, 'verify'>;
  /** ends a job as JobEpilogue does (default: jobs.epilogue) */
  end?: (jobId: string, opts: EpilogueOptions) => Promise<unknown>;
  /** the epilog spool directory (runDir/NODE/epilog-spool) */
  spoolDir?: string;
  /** the jobs with a cgroup of berth's on this node, with when it was made (runtime/job-cgroups.ts) */
  cgroupJobs?: () => Map<string, number>;
  /** 'start': berthd's reconcile before it serves; 'sweep': the periodic backstop */
  when?: 'start' | 'sweep';
}

/**
 * The jobs with something on this node, by job id, with the time (ms) of their earliest
 * container or record: every job the engine's trusted containers name (its job or step
 * containers, sealed by berthd, or those its user made), and the job table's records, which
 * hold the jobs whose containers are gone (kept so that the epilogue accounts for them), and
 * the jobs that left only their cgroups.
 */
export async function jobsOnNode(o: Pick<ReconcileOptions, 'jobs' | 'engine' | 'seal' | 'node' | 'log' | 'cgroupJobs'>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const note = (jobId: string, at: number): void => {
    const t = Number.isFinite(at) ? at : 0;
    out.set(jobId, Math.min(out.get(jobId) ?? t, t));
  };
  for (const c of await listBerthContainers(o.engine, o.node, { seal: o.seal })) {
    if (c.role !== 'user' && o.seal && !c.sealed) {
      o.log.warn('a container carries berth\'s labels without berth\'s seal: not trusted as berth\'s, left alone', { container: c.id, name: c.name, job: c.jobId });
      continue;
    }
    note(c.jobId, c.created * 1000);
  }
  for (const j of o.jobs.list()) note(j.jobId, Date.parse(j.startTime || '1970-01-01'));
  // a job whose step containers are all gone leaves only its cgroups when no epilogue came
  for (const [jobId, at] of o.cgroupJobs?.() ?? []) note(jobId, at);
  return out;
}

/** Settles the spooled epilogs (jobs ended by Slurm while berthd was unreachable). */
async function settleSpool(o: ReconcileOptions, end: NonNullable<ReconcileOptions['end']>): Promise<string[]> {
  if (!o.spoolDir) return [];
  let spooled;
  try {
    spooled = readSpooledEpilogs(o.spoolDir);
  } catch (err) {
    o.log.error('could not read the epilog spool', { dir: o.spoolDir, error: errorMessage(err) });
    return [];
  }
  for (const name of spooled.bad) o.log.warn('a file in the epilog spool is not an epilog record: left alone', { dir: o.spoolDir, file: name });
  const settled: string[] = [];
  for (const rec of spooled.records) {
    const log = o.log.child({ job: rec.jobId });
    const job = o.jobs.get(rec.jobId);
    // the job was requeued and started here again after that epilog: the record is stale
    if (job && Date.parse(job.startTime) > Date.parse(rec.time)) {
      log.info('dropped a spooled epilog older than the job\'s container here (the job started again)', { spooledAt: rec.time, started: job.startTime });
      if (!o.dryRun) removeSpooledEpilog(o.spoolDir, rec.jobId);
      continue;
    }
    if (o.dryRun) {
      log.info('spooled epilog (dry run: kept)', { spooledAt: rec.time });
      continue;
    }
    try {
      await end(rec.jobId, { settledLate: true, end: new Date(rec.time) });
      removeSpooledEpilog(o.spoolDir, rec.jobId);
      settled.push(rec.jobId);
      log.warn('ended a job whose epilog could not reach berthd', { spooledAt: rec.time, reason: rec.reason });
    } catch (err) {
      log.error('could not settle a spooled epilog; the next orphan sweep tries again', { error: errorMessage(err) });
    }
  }
  return settled;
}

/**
 * Ends the jobs on this node that Slurm no longer runs here (older than graceMs), after
 * settling the epilog spool. Nothing is removed but spooled jobs when Slurm cannot be asked.
 */
export async function reconcileJobs(o: ReconcileOptions): Promise<OrphanSweep> {
  const now = (o.now ?? new Date()).getTime();
  const end = o.end ?? ((jobId: string, opts: EpilogueOptions) => o.jobs.epilogue(jobId, opts));
  const settled = await settleSpool(o, end);
  const active = await o.source.activeJobs(o.node);
  const known = await jobsOnNode(o);
  if (!active) {
    o.log.warn(o.when === 'start'
      ? 'Slurm could not be asked which jobs run on this node: no container removed at start; berthd asks again shortly'
      : 'orphan sweep skipped: Slurm could not be asked which jobs run here', { jobs: known.size });
    return { checked: known.size, orphans: [], removed: [], settled, skipped: 'slurm unavailable' };
  }
  const orphans = [...known].filter(([jobId, at]) => !active.has(jobId) && now - at > o.graceMs).map(([jobId]) => jobId)
    .sort((a, b) => Number(a) - Number(b));
  const removed: string[] = [];
  if (o.dryRun) {
    for (const jobId of orphans) o.log.info('orphan job (dry run: kept)', { job: jobId });
    return { checked: known.size, orphans, removed, settled };
  }
  // a few at a time: a node back after a long outage may hold many
  const queue = [...orphans];
  await Promise.all(Array.from({ length: Math.min(8, queue.length) }, async () => {
    for (let jobId = queue.shift(); jobId !== undefined; jobId = queue.shift()) {
      try {
        await end(jobId, { settledLate: true });
        removed.push(jobId);
        o.log.warn(o.when === 'start' ? 'ended a job Slurm no longer runs on this node (found at start)' : 'ended orphan job: Slurm no longer runs it on this node', { job: jobId });
      } catch (err) {
        o.log.error('could not end orphan job', { job: jobId, error: errorMessage(err) });
      }
    }
  }));
  removed.sort((a, b) => Number(a) - Number(b));
  return { checked: known.size, orphans, removed, settled };
}

/** The periodic backstop: reconcileJobs with the grace period. */
export function sweepOrphans(o: Omit<ReconcileOptions, 'when'>): Promise<OrphanSweep> {
  return reconcileJobs({ ...o, when: 'sweep' });
}
