// What berthd knows of one job on this node. The container labels are the source of truth
// for identity; steps live here and in the job's checkpoint file.
import type { JobIdentity } from '../containers/labels';

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
}
