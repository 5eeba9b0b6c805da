// The job faults of this node: jobs whose prologue failed for a reason of their own
// (shared/fault-class.ts). The prolog then exits 0, so Slurm keeps the node in service and
// runs the job; the SPANK plugin fails every step of the job here — the batch step too — with
// the recorded message on the task's stderr (berth_spank_tasks.c), berth exec and berth job
// get it from berthd, and the epilogue removes the record.
//
// RUN_DIR/NODE/faults/JOB, root's (directory 0755, file 0644: a few lines of C read it in
// slurmstepd, as root), one "key=value" per line:
//   uid=      the job's user: only they (and root) are told the reason by berthd
//   code=     berth's error code
//   reason=   why, as berthd said it
//   message=  the line each step prints
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { ErrorCode } from '../../shared/errors';
import { writeFileAtomic } from '../../shared/atomic-write';
import { isJobId } from '../../shared/ids';

export interface JobFault {
  jobId: string;
  uid: number;
  code: ErrorCode;
  /** why, as berthd said it */
  reason: string;
  /** what every step of the job prints on this node */
  message: string;
}

const ONE_LINE = (text: string): string => text.replace(/[\r\n]+/g, ' ').trim();

export class JobFaults {
  constructor(readonly dir: string) {}

  private file(jobId: string): string {
    if (!isJobId(jobId)) throw new Error(`'${jobId}' is not a Slurm job id`);
    return path.join(this.dir, jobId);
  }

  /** Written whole (a temporary file renamed over), so the plugin never reads half a record. */
  record(f: JobFault): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const file = this.file(f.jobId);
    writeFileAtomic(file, `uid=${f.uid}\ncode=${f.code}\nreason=${ONE_LINE(f.reason)}\nmessage=${ONE_LINE(f.message)}\n`, { mode: 0o644 });
  }

  get(jobId: string): JobFault | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(jobId), 'utf8');
    } catch {
      return undefined;
    }
    const field = (k: string): string => text.split('\n').find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1) ?? '';
    return { jobId, uid: Number(field('uid')), code: field('code') as ErrorCode, reason: field('reason'), message: field('message') };
  }

  clear(jobId: string): void {
    rmSync(this.file(jobId), { force: true });
  }

  /** the jobs with a record here, for housekeeping (a record whose job Slurm no longer runs can go) */
  jobs(): string[] {
    try {
      return readdirSync(this.dir).filter((n) => isJobId(n));
    } catch {
      return [];
    }
  }
}
