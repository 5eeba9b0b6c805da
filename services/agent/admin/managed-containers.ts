// The containers berth manages on this node (`berth containers`), read from the engine by
// berth's labels, so that containers berthd has lost track of are listed too: every job
// container and step container of this node, and the containers job users made through their
// job's Docker endpoint (labelled with the job and role=user by it), each with its role; a
// user container recorded on a job that dockerd no longer has shows as "missing".
import { type BerthRole, listBerthContainers } from '../containers/berth-containers';
import { LABEL, ROLE_JOB, ROLE_STEP, ROLE_USER } from '../containers/labels';
import type { ContainerEngine } from '../docker/engine';
import type { JobRecord } from '../jobs/job-record';

export interface ManagedContainerView {
  id: string;
  name: string;
  kind: 'JOB' | 'STEP' | 'USER';
  jobId: string;
  user: string;
  image: string;
  /** dockerd's state, or "missing" for a recorded user container dockerd no longer has */
  state: string;
  /** RFC 3339, empty when unknown */
  created: string;
}

function iso(seconds: number): string {
  return Number.isFinite(seconds) && seconds > 0 ? new Date(seconds * 1000).toISOString() : '';
}

const KIND: Record<BerthRole, ManagedContainerView['kind']> = { [ROLE_JOB]: 'JOB', [ROLE_STEP]: 'STEP', [ROLE_USER]: 'USER' };

export async function listManagedContainers(engine: Pick<ContainerEngine, 'listByLabel' | 'inspect'>, node: string, jobs: JobRecord[]): Promise<ManagedContainerView[]> {
  const owner = new Map(jobs.map((j) => [j.jobId, j.user]));
  const labelled = await listBerthContainers(engine, node);
  const out: ManagedContainerView[] = await Promise.all(labelled.map(async (c): Promise<ManagedContainerView> => {
    const { jobId } = c;
    const kind = KIND[c.role];
    // a user's container has no digest label: its image is what dockerd says
    const image = c.labels[LABEL.imageDigest] ?? (kind === 'USER' ? (await engine.inspect(c.id))?.image ?? '' : '');
    return { id: c.id, name: c.name, kind, jobId, user: c.labels[LABEL.user] ?? owner.get(jobId) ?? '', image, state: c.state, created: iso(c.created) };
  }));
  const seen = new Set(out.map((c) => c.id));
  for (const j of jobs) {
    for (const id of j.userContainers) {
      if (seen.has(id) || [...seen].some((s) => s.startsWith(id))) continue;
      const c = await engine.inspect(id);
      out.push(c
        ? { id: c.id, name: c.name, kind: 'USER', jobId: j.jobId, user: j.user, image: c.image, state: c.state, created: iso(c.created) }
        : { id, name: '', kind: 'USER', jobId: j.jobId, user: j.user, image: '', state: 'missing', created: '' });
    }
  }
  const order = { JOB: 0, STEP: 1, USER: 2 };
  return out.sort((a, b) => a.jobId.localeCompare(b.jobId, undefined, { numeric: true }) || order[a.kind] - order[b.kind] || a.name.localeCompare(b.name));
}
