// `berth containers`: every berth container of the node from the engine's labels, with its role:
// job, step and users' containers; a recorded user container dockerd lost shows as missing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listManagedContainers } from '../../services/agent/admin/managed-containers';
import type { JobRecord } from '../../services/agent/jobs/job-record';
import { FakeEngine } from './fakes/fake-engine';

function put(engine: FakeEngine, id: string, name: string, labels: Record<string, string>, image = 'img'): void {
  engine.containers.set(id, {
    id, name, labels, state: 'running', created: 1_796_000_000, running: true, startedAt: '', image,
    nanoCpus: 0, memoryBytes: 0, devices: [], pid: 0, env: [], body: {}, files: new Map(),
  });
}

describe('berth containers', () => {
  it('lists job, step and users\' containers of the node with their role, and recorded ones that are gone', async () => {
    const engine = new FakeEngine();
    const job = { 'io.berth.job.id': '7', 'io.berth.node': 'n1', 'io.berth.user': 'alice', 'io.berth.image.digest': 'reg/demo@sha256:a' };
    put(engine, 'c-job', 'berth-n1-job-7', { ...job, 'io.berth.role': 'job' });
    put(engine, 'c-step', 'berth-n1-job-7-step-1', { ...job, 'io.berth.role': 'step' });
    put(engine, 'c-user', 'alice-web', { 'io.berth.job.id': '7', 'io.berth.role': 'user' }, 'reg/nginx:1');
    // another node's job container on a shared engine, a stranger's container, a container with a role berth does not make
    put(engine, 'c-other-node', 'berth-n2-job-8', { ...job, 'io.berth.job.id': '8', 'io.berth.node': 'n2', 'io.berth.role': 'job' });
    put(engine, 'c-plain', 'plain', {});
    put(engine, 'c-odd', 'odd', { 'io.berth.job.id': '7', 'io.berth.role': 'admin' });
    const jobs = [{ jobId: '7', user: 'alice', userContainers: ['c-user', 'c-gone'] } as unknown as JobRecord];
    const list = await listManagedContainers(engine, 'n1', jobs);
    assert.deepEqual(list.map((c) => [c.kind, c.id, c.jobId, c.user, c.image, c.state]), [
      ['JOB', 'c-job', '7', 'alice', 'reg/demo@sha256:a', 'running'],
      ['STEP', 'c-step', '7', 'alice', 'reg/demo@sha256:a', 'running'],
      ['USER', 'c-gone', '7', 'alice', '', 'missing'],
      ['USER', 'c-user', '7', 'alice', 'reg/nginx:1', 'running'],
    ]);
    assert.match(list[0]!.created, /^2026-/);
  });

  it('lists a job\'s containers that berthd has no record of (found by their labels)', async () => {
    const engine = new FakeEngine();
    put(engine, 'c-step', 'berth-n1-job-9-step-0', { 'io.berth.job.id': '9', 'io.berth.node': 'n1', 'io.berth.user': 'bob', 'io.berth.role': 'step' });
    const list = await listManagedContainers(engine, 'n1', []);
    assert.deepEqual(list.map((c) => [c.kind, c.jobId, c.user]), [['STEP', '9', 'bob']]);
  });
});
