// The one reading of berth's containers on this node, from the engine by their labels. A berth
// container is labelled with a job id and either
//   role=job or role=step, with this node's name: berthd made it (sealed: containers/seal.ts);
//   role=user: the job's user made it through the job's Docker endpoint, which adds the job's
//   label and the role (the site policy requires both); it names no node (the engine is the node's).
// Recovery, the orphan sweep, `berth containers` and the job's epilogue all read through here;
// each then keeps the roles it acts on, and those that trust a container's labels (recovery, the
// sweep) keep only sealed ones.
import type { ContainerEngine, ContainerSummary } from '../docker/engine';
import { isJobId } from '../../shared/ids';
import { type JobIdentity, jobFromLabels, LABEL, ROLE_JOB, ROLE_STEP, ROLE_USER } from './labels';
import type { ContainerSeal } from './seal';

export type BerthRole = typeof ROLE_JOB | typeof ROLE_STEP | typeof ROLE_USER;

export interface BerthContainer {
  id: string;
  name: string;
  role: BerthRole;
  jobId: string;
  /** dockerd's state: created, running, exited, ... */
  state: string;
  /** seconds since the epoch */
  created: number;
  labels: Record<string, string>;
  /** a job or step container's identity, when its labels are a complete set */
  identity?: JobIdentity;
  /** whether berth's seal matches its name and labels (job and step containers; false without a seal to check) */
  sealed: boolean;
}

/** A container as berth's, or undefined when it is not one of this node's. */
export function readBerthContainer(c: ContainerSummary, node: string, seal?: Pick<ContainerSeal, 'verify'>): BerthContainer | undefined {
  const jobId = c.labels[LABEL.jobId] ?? '';
  const role = c.labels[LABEL.role];
  if (!isJobId(jobId)) return undefined;
  const base = { id: c.id, name: c.name, jobId, state: c.state, created: c.created, labels: c.labels };
  if (role === ROLE_USER) return { ...base, role, sealed: false };
  if ((role !== ROLE_JOB && role !== ROLE_STEP) || c.labels[LABEL.node] !== node) return undefined;
  const identity = jobFromLabels(c.labels);
  return { ...base, role, ...(identity ? { identity } : {}), sealed: seal?.verify(c.name, c.labels) ?? false };
}

/** berth's containers on this node (of one job when jobId is given), as the engine has them now. */
export async function listBerthContainers(engine: Pick<ContainerEngine, 'listByLabel'>, node: string, opts: { jobId?: string; seal?: Pick<ContainerSeal, 'verify'> } = {}): Promise<BerthContainer[]> {
  const out: BerthContainer[] = [];
  for (const c of await engine.listByLabel(LABEL.jobId, opts.jobId)) {
    const b = readBerthContainer(c, node, opts.seal);
    if (b && (opts.jobId === undefined || b.jobId === opts.jobId)) out.push(b);
  }
  return out;
}
