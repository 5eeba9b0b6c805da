// What berthd knows of one job on this node. The container labels are the source of truth
// for identity; steps live here and in the job's checkpoint file.
import type { ContainerUsage } from '../docker/container-usage';
import type { JobProvenance } from './job-provenance';
import type { JobIdentity } from '../containers/labels';

/** a step's usage: the container's, and the Slurm task cgroups' share when the step was placed in them */
export type StepUsage = ContainerUsage & { slurmTask?: { cpuNanos: number; memoryPeakBytes: number } };

export type JobState = 'PREPARING' | 'RUNNING' | 'ENDING' | 'ENDED' | 'FAILED' | 'UNKNOWN';
export type StepState = 'RUNNING' | 'EXITED' | 'KILLED' | 'FAILED';

export interface StepRecord {
  stepId: string;
  taskId: number;
  argv: string[];
  state: StepState;
  exitCode: number;
  signal: string;
  startTime: string;
  endTime: string;
  /**
   * The job container's CPU used while the step ran (end − start sample) and its memory peak
   * at the step's end: steps share the container's cgroup. Absent until the step ends, or
   * when the cgroup could not be read. A berth exec step placed in its Slurm task's memory
   * and cpuacct cgroups is charged there: that task's CPU over the step is added and its peak
   * counts (`slurmTask`, which the job's own figures add in too).
   */
  usage?: StepUsage;
  /** recovery found the step running when berthd had stopped: its end, if it comes, replaces the guess */
  cutByRestart?: boolean;
}

export interface JobRecord extends JobIdentity {
  containerId: string;
  containerName: string;
  state: JobState;
  endTime: string;
  error: string;
  steps: StepRecord[];
  /** containers the job's user made through the Docker API (AuthZ plugin), removed with the job */
  userContainers: string[];
  /** named volumes the job's user created through the Docker API, removed with the job */
  userVolumes?: string[];
  /** what the job's container runs without, and why (a working directory its user cannot reach): told to the user */
  warnings?: string[];
  /** account, registry, mounts, devices, pull and start figures, for accounting */
  provenance?: JobProvenance;
  /**
   * recovery found the job's container but no checkpoint: the prologue that made it was cut
   * off by a restart of berthd before it finished (the checkpoint is its last act), so a
   * repeated prologue makes the container again rather than return it
   */
  prologueCut?: boolean;
}
