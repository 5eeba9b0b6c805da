// The containers berth manages on this node (`berth containers`): every job container
// (found by its labels, so one berthd has lost track of is listed too) and the containers
// job users made through the Docker API (recorded on their job).
import { LABEL, ROLE_JOB } from '../containers/labels';
import type { ContainerEngine } from '../docker/engine';
import type { JobRecord } from '../jobs/job-record';

export interface ManagedContainerView {
  id: string;
  name: string;
  kind: 'JOB' | 'USER';
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

export async function listManagedContainers(engine: Pick<ContainerEngine, 'listByLabel' | 'inspect'>, node: string, jobs: JobRecord[]): Promise<ManagedContainerView[]> {
  const labelled = (await engine.listByLabel(LABEL.node, node)).filter((c) => c.labels[LABEL.role] === ROLE_JOB);
  const out: ManagedContainerView[] = labelled.map((c) => ({
    id: c.id, name: c.name, kind: 'JOB', jobId: c.labels[LABEL.jobId] ?? '', user: c.labels[LABEL.user] ?? '',
    image: c.labels[LABEL.imageDigest] ?? '', state: c.state, created: iso(c.created),
  }));
  const users = await Promise.all(jobs.flatMap((j) => j.userContainers.map(async (id): Promise<ManagedContainerView> => {
    const c = await engine.inspect(id);
    return c
      ? { id: c.id, name: c.name, kind: 'USER', jobId: j.jobId, user: j.user, image: c.image, state: c.state, created: iso(c.created) }
      : { id, name: '', kind: 'USER', jobId: j.jobId, user: j.user, image: '', state: 'missing', created: '' };
  })));
  return [...out, ...users].sort((a, b) => a.jobId.localeCompare(b.jobId, undefined, { numeric: true }) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
}
