// Identity of berth's containers lives in their labels; berthd rebuilds its job table from
// them after a restart. Names are deterministic so that a repeated prologue finds its container.
import { AGENT_VERSION } from '../../shared/version';

export const LABEL = {
  role: 'io.berth.role',
  jobId: 'io.berth.job.id',
  node: 'io.berth.node',
  uid: 'io.berth.uid',
  gid: 'io.berth.gid',
  user: 'io.berth.user',
  imageRef: 'io.berth.image.ref',
  imageDigest: 'io.berth.image.digest',
  workDir: 'io.berth.work-dir',
  startTime: 'io.berth.start-time',
  agentVersion: 'io.berth.agent.version',
} as const;

export const ROLE_JOB = 'job';

export interface JobIdentity {
  jobId: string;
  node: string;
  uid: number;
  gid: number;
  user: string;
  imageRef: string;
  imageDigest: string;
  workDir: string;
  startTime: string;
}

export function jobContainerName(node: string, jobId: string): string {
  return `berth-${node}-job-${jobId}`;
}

export function jobLabels(id: JobIdentity): Record<string, string> {
  return {
    [LABEL.role]: ROLE_JOB,
    [LABEL.jobId]: id.jobId,
    [LABEL.node]: id.node,
    [LABEL.uid]: String(id.uid),
    [LABEL.gid]: String(id.gid),
    [LABEL.user]: id.user,
    [LABEL.imageRef]: id.imageRef,
    [LABEL.imageDigest]: id.imageDigest,
    [LABEL.workDir]: id.workDir,
    [LABEL.startTime]: id.startTime,
    [LABEL.agentVersion]: AGENT_VERSION,
  };
}

/** Reads a job identity back from labels; undefined when they are not a complete berth set. */
export function jobFromLabels(labels: Record<string, string>): JobIdentity | undefined {
  const get = (k: string): string | undefined => labels[k];
  const jobId = get(LABEL.jobId);
  const node = get(LABEL.node);
  const uid = Number(get(LABEL.uid));
  const gid = Number(get(LABEL.gid));
  if (get(LABEL.role) !== ROLE_JOB || !jobId || !node || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return {
    jobId,
    node,
    uid,
    gid,
    user: get(LABEL.user) ?? '',
    imageRef: get(LABEL.imageRef) ?? '',
    imageDigest: get(LABEL.imageDigest) ?? '',
    workDir: get(LABEL.workDir) ?? '',
    startTime: get(LABEL.startTime) ?? '',
  };
}
