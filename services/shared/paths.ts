// Where a node's berthd listens. One directory per node name so that several agents can
// share a host (the sandbox runs three); on a real cluster there is one per host.
import path from 'node:path';

export const DEFAULT_RUN_DIR = '/run/berth';

export interface AgentSockets {
  /** root only (mode 0600): hooks and admin commands, trusted by the socket's permissions */
  admin: string;
  /** everyone (mode 0666): job users, every call carries a munge credential */
  user: string;
}

export function agentSockets(runDir: string, node: string): AgentSockets {
  const dir = path.join(runDir, node);
  return { admin: path.join(dir, 'admin.sock'), user: path.join(dir, 'user.sock') };
}

/** where berthd writes the task files of native container steps (steps/task-files.ts); the SPANK plugin reads them there */
export function agentTasksDir(runDir: string, node: string): string {
  return path.join(runDir, node, 'tasks');
}

/**
 * where the SPANK plugin leaves the start and end of each native step that joined its job's
 * container without asking berthd (RUN_DIR/NODE/step-spool/JOB.STEP, root's); berthd reads
 * them (agent/steps/step-spool.ts) into the job's accounting
 */
export function agentStepSpoolDir(runDir: string, node: string): string {
  return path.join(runDir, node, 'step-spool');
}

/**
 * where berthd records the job faults of the jobs whose prologue failed on the node
 * (agent/jobs/job-faults.ts): RUN_DIR/NODE/faults/JOB, root's; the SPANK plugin reads them
 * in slurmstepd and fails every step of such a job there with the reason
 */
export function agentFaultsDir(runDir: string, node: string): string {
  return path.join(runDir, node, 'faults');
}

/**
 * berthd's per-job state under stateDir: jobs/JOB.json (the checkpoint, jobs/job-table.ts) and
 * jobs/JOB/ (the job container's passwd and group, a step container's files in jobs/JOB/NAME/),
 * root's, removed by the job's epilogue
 */
export function agentJobsStateDir(stateDir: string): string {
  return path.join(stateDir, 'jobs');
}

export function agentJobStateDir(stateDir: string, jobId: string): string {
  return path.join(agentJobsStateDir(stateDir), jobId);
}
