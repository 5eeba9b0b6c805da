// What every fault drill ends with (issue 12): no container of an ended job left on any
// engine, every ended job's accounting record on every node it ran on exactly once, no node
// drained (unless the drill is a node fault), and the user told why when a job failed.
import assert from 'node:assert/strict';
import { accountingRecords, containersOfJob, run, waitFor } from './slurm';
import { sandbox } from './stack';

export interface EndedJob {
  jobId: string;
  /** the nodes it ran on */
  nodes: string[];
  /** records written before this (RFC 3339) are an earlier job's */
  since: string;
  /** its final Slurm state: COMPLETED, CANCELLED, FAILED ... */
  state: string;
  /** for a failed job: what the user must have been told, and where they read it */
  toldWhy?: { pattern: RegExp; where: () => string };
}

/** the job's state and fields from scontrol (kept MinJobAge after its end) */
export function jobFields(jobId: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of run('scontrol', ['show', 'job', '-o', jobId]).stdout.matchAll(/(\w+)=(\S*)/g)) out[m[1]!] ??= m[2]!;
  return out;
}

/** the job's final state from slurmdbd (sacct), once slurmctld has forgotten it (MinJobAge) */
function accountedState(jobId: string): string | undefined {
  const r = run('sacct', ['-X', '-n', '-P', '-o', 'State', '-j', jobId]);
  const state = r.stdout.trim().split('\n')[0]?.split(' ')[0];
  return r.code === 0 && state ? state : undefined;
}

/** waits until Slurm has ended the job (every node's epilog included) and returns its final state */
export function finalState(jobId: string, timeoutMs = 120_000): string {
  return waitFor(`job ${jobId} ended in Slurm`, () => {
    const f = jobFields(jobId);
    // the sandbox keeps an ended job in slurmctld for MinJobAge=10 s only; then ask slurmdbd
    if (f.JobState === undefined) {
      const state = accountedState(jobId);
      return state && !/PENDING|RUNNING|REQUEUED|SUSPENDED/.test(state) ? state : undefined;
    }
    return !/PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED/.test(f.JobState) ? f.JobState : undefined;
  }, timeoutMs);
}

/** node names Slurm has drained or failed, with their reasons */
export function drainedNodes(): string[] {
  return run('sinfo', ['-h', '-N', '-o', '%N %T %E']).stdout.split('\n').filter((l) => /\b(drain|drained|draining|fail|failing|down)\b/i.test(l.split(' ')[1] ?? ''));
}

export function jobRecordsOn(nodeName: string, job: Pick<EndedJob, 'jobId' | 'since'>): Record<string, unknown>[] {
  return accountingRecords(nodeName).filter((r) => r.JobID === job.jobId && r.RecordType === 'job' && String(r.Start) >= job.since);
}

export function assertDrillInvariants(jobs: EndedJob[], o: { drained?: string[] } = {}): void {
  for (const j of jobs) assert.equal(finalState(j.jobId), j.state, `job ${j.jobId}'s final state`);
  for (const n of sandbox().nodes) {
    for (const j of jobs) {
      waitFor(`no container of job ${j.jobId} left on ${n.name}`, () => containersOfJob(n.name, j.jobId).length === 0 || undefined, 30_000);
    }
  }
  for (const j of jobs) {
    for (const n of j.nodes) {
      waitFor(`job ${j.jobId}'s accounting record on ${n}`, () => jobRecordsOn(n, j).length > 0 || undefined, 30_000);
      assert.equal(jobRecordsOn(n, j).length, 1, `job ${j.jobId} is accounted on ${n} exactly once`);
    }
    if (j.toldWhy) assert.match(j.toldWhy.where(), j.toldWhy.pattern, `job ${j.jobId}'s user is told why it failed`);
  }
  assert.deepEqual(drainedNodes().map((l) => l.split(' ')[0]).filter((n) => !(o.drained ?? []).includes(n!)), [], `no node drained: ${drainedNodes().join('; ')}`);
}
