// The accounting record: one JSON object per line of the accounting log, one per job and
// one per step on this node. Names follow sacct where it has one (JobID, User, UID, Account,
// NodeList, Start, End, State, ExitCode); figures carry their unit in the name
// (ElapsedSeconds, TotalCPUSeconds, MaxRSSBytes). docs/accounting.md is the reference.
import { constants } from 'node:os';
import type { ContainerUsage } from '../docker/container-usage';
import type { JobRecord, StepRecord } from '../jobs/job-record';
import type { ProvenanceMount } from '../jobs/job-provenance';

export const ACCOUNTING_FORMAT = 2;

/** a mount of the job's container as the job's provenance holds it (jobs/job-provenance.ts) */
export type AccountingMount = ProvenanceMount;

export interface AccountingSave {
  /** --container-save's value */
  Target: string;
  /** REPOSITORY@sha256:... it was pushed as; '' when not saved */
  Image: string;
  /** why it was not saved; '' when saved */
  Error: string;
}

export interface AccountingRecord {
  Format: number;
  RecordType: 'job' | 'step';
  JobID: string;
  /** SLURM_STEP_ID and SLURM_PROCID of a step; null on job records */
  StepID: string | null;
  TaskID: number | null;
  User: string;
  UID: number;
  GID: number;
  Account: string;
  Partition: string;
  /** the node this record was written on (each node accounts its own share of a job) */
  NodeList: string;
  Image: string;
  ImageDigest: string;
  Registry: string;
  ContainerID: string;
  Mounts: AccountingMount[];
  Devices: string[];
  /** the job's GPUs on this node, their device files in Slurm's order (IDX); [] without */
  GPUs: string[];
  /** the CPUs the job's containers ran on (cpuset, Linux numbering); '' when not known */
  CPUSet: string;
  /** job records: whether this prologue pulled the image; null on step records */
  Pulled: boolean | null;
  PullSeconds: number | null;
  PullBytes: number | null;
  /** job records: container create + start, seconds; null on step records */
  StartLatencySeconds: number | null;
  Start: string;
  End: string;
  ElapsedSeconds: number;
  State: 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'UNKNOWN';
  /** "code:signal" as sacct prints it */
  ExitCode: string;
  Reason: string;
  /** CPU seconds (user + system) of the job container; null when it could not be read */
  TotalCPUSeconds: number | null;
  /** peak memory of the job container in bytes (cgroup: RSS plus page cache); null when unknown */
  MaxRSSBytes: number | null;
  /** where the two figures above came from: cgroup-v2, cgroup-v1, docker-stats, or "" */
  UsageSource: string;
  /** step records: the command; [] on job records */
  Argv: string[];
  /**
   * true when berthd ended the job itself, not at the job's epilog: the epilog could not reach
   * it (spooled), or berthd found at its start or in its orphan sweep that Slurm no longer runs
   * the job here. End is then when berthd settled it (the spooled epilog's time when known).
   */
  SettledLate: boolean;
  /** job records of a job with --container-save, on the node that saved it: where it went, or why not */
  ContainerSave?: AccountingSave;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

function elapsed(start: string, end: string): number {
  const s = Date.parse(start);
  const e = Date.parse(end);
  return Number.isFinite(s) && Number.isFinite(e) && e >= s ? round3((e - s) / 1000) : 0;
}

function signalNumber(name: string, exitCode: number): number {
  const n = (constants.signals as Record<string, number>)[name];
  if (n) return n;
  return exitCode > 128 && exitCode < 128 + 65 ? exitCode - 128 : 0;
}

export function stepExitCode(s: Pick<StepRecord, 'state' | 'exitCode' | 'signal'>): string {
  if (s.state === 'KILLED') return `0:${signalNumber(s.signal, s.exitCode)}`;
  return `${s.exitCode}:0`;
}

export function stepState(s: Pick<StepRecord, 'state' | 'exitCode'>): 'COMPLETED' | 'FAILED' | 'CANCELLED' {
  if (s.state === 'KILLED') return 'CANCELLED';
  if (s.state === 'FAILED' || s.exitCode !== 0) return 'FAILED';
  return 'COMPLETED';
}

function jobOutcome(job: JobRecord): { state: AccountingRecord['State']; exitCode: string } {
  if (job.state === 'UNKNOWN' || job.state === 'FAILED') return { state: 'UNKNOWN', exitCode: '0:0' };
  const cancelled = job.steps.find((s) => stepState(s) === 'CANCELLED');
  if (cancelled) return { state: 'CANCELLED', exitCode: stepExitCode(cancelled) };
  const failed = job.steps.find((s) => stepState(s) === 'FAILED');
  if (failed) return { state: 'FAILED', exitCode: stepExitCode(failed) };
  return { state: 'COMPLETED', exitCode: '0:0' };
}

function common(job: JobRecord): Omit<AccountingRecord, 'RecordType' | 'StepID' | 'TaskID' | 'Pulled' | 'PullSeconds' | 'PullBytes' | 'StartLatencySeconds'
  | 'Start' | 'End' | 'ElapsedSeconds' | 'State' | 'ExitCode' | 'Reason' | 'TotalCPUSeconds' | 'MaxRSSBytes' | 'UsageSource' | 'Argv' | 'SettledLate'> {
  const p = job.provenance;
  return {
    Format: ACCOUNTING_FORMAT,
    JobID: job.jobId,
    User: job.user,
    UID: job.uid,
    GID: job.gid,
    Account: p?.account ?? '',
    Partition: p?.partition ?? '',
    NodeList: job.node,
    Image: job.imageRef,
    ImageDigest: job.imageDigest,
    Registry: p?.registry ?? (job.imageDigest.includes('/') ? job.imageDigest.slice(0, job.imageDigest.indexOf('/')) : ''),
    ContainerID: job.containerId,
    Mounts: p?.mounts ?? [],
    Devices: p?.devices ?? [],
    GPUs: p?.gpus ?? [],
    CPUSet: p?.cpuset ?? '',
  };
}

/** What berthd knows of a job whose prologue failed for a reason of its own (a job fault). */
export interface FaultedPrologue {
  jobId: string;
  uid: number;
  gid: number;
  user: string;
  image: string;
  account: string;
  partition: string;
  node: string;
  /** when the prologue began and when it failed (RFC 3339) */
  start: string;
  end: string;
  code: string;
  reason: string;
}

/**
 * The job record of a job whose container was never made here (a job fault): the job still
 * ran on the node as far as Slurm is concerned, so the node accounts for it, with no
 * container, no usage, and berth's code and reason. CANCELLED when the job ended during its
 * prologue (scancel, time limit), FAILED otherwise.
 */
export function faultedJobRecord(f: FaultedPrologue): AccountingRecord {
  return {
    Format: ACCOUNTING_FORMAT,
    RecordType: 'job', JobID: f.jobId, StepID: null, TaskID: null,
    User: f.user, UID: f.uid, GID: f.gid, Account: f.account, Partition: f.partition, NodeList: f.node,
    Image: f.image, ImageDigest: '', Registry: '', ContainerID: '', Mounts: [], Devices: [], GPUs: [], CPUSet: '',
    Pulled: null, PullSeconds: null, PullBytes: null, StartLatencySeconds: null,
    Start: f.start, End: f.end, ElapsedSeconds: elapsed(f.start, f.end),
    State: f.code === 'JOB_NOT_RUNNING' ? 'CANCELLED' : 'FAILED', ExitCode: '0:0', Reason: `${f.code}: ${f.reason}`,
    TotalCPUSeconds: null, MaxRSSBytes: null, UsageSource: '', Argv: [], SettledLate: false,
  };
}

/** The job's record and one per step, in that order: written together at the epilogue. */
export function accountingRecords(job: JobRecord, end: string, usage: ContainerUsage | undefined, opts: { settledLate?: boolean; save?: AccountingSave } = {}): AccountingRecord[] {
  const base = { ...common(job), SettledLate: opts.settledLate === true };
  const p = job.provenance;
  const outcome = jobOutcome(job);
  // berth exec steps placed in their Slurm task's cgroups were charged there, not to the container
  const inTasks = job.steps.map((s) => s.usage?.slurmTask).filter((t) => t !== undefined);
  const cpuNanos = usage ? usage.cpuNanos + inTasks.reduce((sum, t) => sum + t.cpuNanos, 0) : 0;
  const memoryPeakBytes = usage ? Math.max(usage.memoryPeakBytes, ...inTasks.map((t) => t.memoryPeakBytes)) : 0;
  const jobRec: AccountingRecord = {
    ...base,
    RecordType: 'job',
    StepID: null,
    TaskID: null,
    Pulled: p ? p.pulled : null,
    PullSeconds: p ? round3(p.pullMillis / 1000) : null,
    PullBytes: p ? p.pullBytes : null,
    StartLatencySeconds: p ? round3(p.startLatencyMillis / 1000) : null,
    Start: job.startTime,
    End: end,
    ElapsedSeconds: elapsed(job.startTime, end),
    State: outcome.state,
    ExitCode: outcome.exitCode,
    Reason: job.error,
    TotalCPUSeconds: usage ? round3(cpuNanos / 1e9) : null,
    MaxRSSBytes: usage ? memoryPeakBytes : null,
    UsageSource: usage?.source ?? '',
    Argv: [],
    ...(opts.save ? { ContainerSave: opts.save } : {}),
  };
  return [jobRec, ...job.steps.map((s): AccountingRecord => ({
    ...base,
    RecordType: 'step',
    StepID: s.stepId,
    TaskID: s.taskId,
    Pulled: null,
    PullSeconds: null,
    PullBytes: null,
    StartLatencySeconds: null,
    Start: s.startTime,
    End: s.endTime || end,
    ElapsedSeconds: elapsed(s.startTime, s.endTime || end),
    State: stepState(s),
    ExitCode: stepExitCode(s),
    Reason: s.state === 'KILLED' && s.signal ? `killed by ${s.signal}` : '',
    TotalCPUSeconds: s.usage?.cpuNanos !== undefined ? round3(s.usage.cpuNanos / 1e9) : null,
    MaxRSSBytes: s.usage?.memoryPeakBytes ?? null,
    UsageSource: s.usage?.source ?? '',
    Argv: s.argv,
  }))];
}
