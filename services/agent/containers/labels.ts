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
  // the user's --container-* options that steps need after a restart of berthd
  containerWorkdir: 'io.berth.container.workdir',
  envNames: 'io.berth.container.env',
  name: 'io.berth.container.name',
  mountTargets: 'io.berth.container.mount-targets',
  /** --container-unshare: net,ipc,uts, the namespaces it has of its own (job-container-spec.ts) */
  unshare: 'io.berth.container.unshare',
  stepId: 'io.berth.step.id',
  agentVersion: 'io.berth.agent.version',
} as const;

export const ROLE_JOB = 'job';
/** a container made for one step (srun --container-image of another image) or named by it */
export const ROLE_STEP = 'step';
/** a container the job's user made through the Docker API (the job's endpoint adds the label; the policy requires it) */
export const ROLE_USER = 'user';

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
  /** --container-workdir: where steps start ('' = the client's cwd) */
  containerWorkdir?: string;
  /** --container-env: host variables steps take from the client */
  envNames?: string[];
  /** --container-name */
  name?: string;
  /** targets of the user's mounts and home: directories a step may start in */
  mountTargets?: string[];
  /** set for step containers */
  role?: 'step';
  stepId?: string;
}

export function jobContainerName(node: string, jobId: string): string {
  return `berth-${node}-job-${jobId}`;
}

/** a step's own container, or one the user named (--container-name), kept until the job ends */
export function stepContainerName(node: string, jobId: string, step: { stepId: string; name?: string }): string {
  return step.name ? `berth-${node}-job-${jobId}-name-${step.name}` : `berth-${node}-job-${jobId}-step-${step.stepId}`;
}

export function jobLabels(id: JobIdentity): Record<string, string> {
  return {
    [LABEL.role]: id.role ?? ROLE_JOB,
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
    ...(id.containerWorkdir ? { [LABEL.containerWorkdir]: id.containerWorkdir } : {}),
    ...(id.envNames?.length ? { [LABEL.envNames]: id.envNames.join(',') } : {}),
    ...(id.name ? { [LABEL.name]: id.name } : {}),
    ...(id.mountTargets?.length ? { [LABEL.mountTargets]: id.mountTargets.join(',') } : {}),
    ...(id.stepId ? { [LABEL.stepId]: id.stepId } : {}),
  };
}

/**
 * Reads the identity of a job or step container back from its labels; undefined when they are
 * not a complete berth set (users' containers carry none).
 */
export function jobFromLabels(labels: Record<string, string>): JobIdentity | undefined {
  const get = (k: string): string | undefined => labels[k];
  const jobId = get(LABEL.jobId);
  const node = get(LABEL.node);
  const uid = Number(get(LABEL.uid));
  const gid = Number(get(LABEL.gid));
  const role = get(LABEL.role);
  const stepId = get(LABEL.stepId);
  if ((role !== ROLE_JOB && role !== ROLE_STEP) || !jobId || !node || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return {
    ...(role === ROLE_STEP ? { role: ROLE_STEP, stepId: stepId ?? '' } : {}),
    jobId,
    node,
    uid,
    gid,
    user: get(LABEL.user) ?? '',
    imageRef: get(LABEL.imageRef) ?? '',
    imageDigest: get(LABEL.imageDigest) ?? '',
    workDir: get(LABEL.workDir) ?? '',
    startTime: get(LABEL.startTime) ?? '',
    containerWorkdir: get(LABEL.containerWorkdir) ?? '',
    envNames: list(get(LABEL.envNames)),
    name: get(LABEL.name) ?? '',
    mountTargets: list(get(LABEL.mountTargets)),
  };
}

function list(text: string | undefined): string[] {
  return (text ?? '').split(',').filter(Boolean);
}
