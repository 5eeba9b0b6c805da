// The node's accounting log: one JSON line per job, appended when the job ends. Field names
// follow sacct where one exists (JobID, User, UID, NodeList → job_id, user, uid, node).
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { JobRecord } from '../jobs/job-record';

export interface AccountingRecord {
  record: 'job';
  job_id: string;
  user: string;
  uid: number;
  gid: number;
  node: string;
  image: string;
  image_digest: string;
  container_id: string;
  user_containers: string[];
  state: string;
  error: string;
  start: string;
  end: string;
  steps: {
    step_id: string;
    task_id: number;
    argv: string[];
    state: string;
    exit_code: number;
    signal: string;
    start: string;
    end: string;
  }[];
}

export function toAccountingRecord(job: JobRecord, end: string): AccountingRecord {
  return {
    record: 'job',
    job_id: job.jobId,
    user: job.user,
    uid: job.uid,
    gid: job.gid,
    node: job.node,
    image: job.imageRef,
    image_digest: job.imageDigest,
    container_id: job.containerId,
    user_containers: job.userContainers,
    state: job.state,
    error: job.error,
    start: job.startTime,
    end,
    steps: job.steps.map((s) => ({
      step_id: s.stepId,
      task_id: s.taskId,
      argv: s.argv,
      state: s.state,
      exit_code: s.exitCode,
      signal: s.signal,
      start: s.startTime,
      end: s.endTime,
    })),
  };
}

export class AccountingLog {
  constructor(private readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
  }

  /** One write of one line with O_APPEND: concurrent writers never interleave a record. */
  append(record: AccountingRecord): void {
    appendFileSync(this.file, JSON.stringify(record) + '\n', { mode: 0o640 });
  }
}
