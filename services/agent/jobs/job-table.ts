// The node's jobs, in memory, with a checkpoint file per job (stateDir/jobs/<id>.json) so
// that step records survive an agent restart. The engine stays the source of truth: on start
// the table is rebuilt from container labels and merged with the checkpoints (recover.ts).
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { JobRecord } from './job-record';
import { writeFileAtomic } from '../../shared/atomic-write';
import { agentJobsStateDir } from '../../shared/paths';

export class JobTable {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = agentJobsStateDir(stateDir);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  get(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  list(): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => Number(a.jobId) - Number(b.jobId) || a.jobId.localeCompare(b.jobId));
  }

  /** Stores the record and writes its checkpoint (atomically: temp file, then rename). */
  put(job: JobRecord): void {
    this.jobs.set(job.jobId, job);
    this.checkpoint(job);
  }

  checkpoint(job: JobRecord): void {
    const file = this.file(job.jobId);
    writeFileAtomic(file, JSON.stringify(job), { mode: 0o600 });
  }

  /** Forgets the job and removes its checkpoint. */
  delete(jobId: string): void {
    this.jobs.delete(jobId);
    rmSync(this.file(jobId), { force: true });
  }

  /** Checkpoints left on disk, by job id (read by recovery). */
  readCheckpoints(): Map<string, JobRecord> {
    const out = new Map<string, JobRecord>();
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      try {
        const job = JSON.parse(readFileSync(path.join(this.dir, name), 'utf8')) as JobRecord;
        if (job && typeof job.jobId === 'string') out.set(job.jobId, job);
      } catch {
        // a torn or foreign file: recovery goes by the engine's labels instead
      }
    }
    return out;
  }

  private file(jobId: string): string {
    return path.join(this.dir, `${jobId}.json`);
  }
}
