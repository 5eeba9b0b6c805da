// The one reader of berth's containers: which labelled containers are this node's berth
// containers, with their role, identity and seal, as recovery, the sweep, the listing and the
// epilogue all read them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listBerthContainers, readBerthContainer } from '../../services/agent/containers/berth-containers';
import { jobLabels } from '../../services/agent/containers/labels';
import { ContainerSeal } from '../../services/agent/containers/seal';
import { FakeEngine } from './fakes/fake-engine';

const identity = {
  jobId: '7', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'demo', imageDigest: 'reg/demo@sha256:a', workDir: '/w', startTime: '2026-12-01T10:00:00.000Z',
};

describe('berth containers, read from their labels', () => {
  it('reads job, step and users\' containers of this node with their role; ignores other nodes, other roles and bad job ids', async () => {
    const seal = new ContainerSeal(Buffer.alloc(32, 3));
    const engine = new FakeEngine();
    const make = async (name: string, labels: Record<string, string>) => engine.create({ name, body: { Image: 'x', Labels: labels } });
    await make('berth-n1-job-7', seal.seal('berth-n1-job-7', jobLabels(identity)));
    await make('berth-n1-job-7-step-0', seal.seal('berth-n1-job-7-step-0', jobLabels({ ...identity, role: 'step', stepId: '0' })));
    await make('alice-web', { 'io.berth.job.id': '7', 'io.berth.role': 'user' });
    await make('berth-n2-job-7', jobLabels({ ...identity, node: 'n2' }));
    await make('odd', { 'io.berth.job.id': '7', 'io.berth.node': 'n1', 'io.berth.role': 'admin' });
    await make('bad-id', { ...jobLabels(identity), 'io.berth.job.id': '7;rm' });
    await make('forged', jobLabels({ ...identity, jobId: '8' }));
    const all = await listBerthContainers(engine, 'n1', { seal });
    assert.deepEqual(all.map((c) => [c.name, c.role, c.jobId, c.sealed]), [
      ['berth-n1-job-7', 'job', '7', true], ['berth-n1-job-7-step-0', 'step', '7', true], ['alice-web', 'user', '7', false], ['forged', 'job', '8', false],
    ]);
    assert.deepEqual(all[1]!.identity, { ...identity, role: 'step', stepId: '0', containerWorkdir: '', envNames: [], name: '', mountTargets: [] });
    assert.equal(all[2]!.identity, undefined, 'a user\'s container has no berth identity');
    assert.deepEqual((await listBerthContainers(engine, 'n1', { jobId: '8' })).map((c) => c.name), ['forged']);
  });

  it('takes an incomplete berth label set as berth\'s container, without an identity', () => {
    const c = readBerthContainer({ id: 'c', name: 'berth-n1-job-9-step-1', labels: { 'io.berth.job.id': '9', 'io.berth.node': 'n1', 'io.berth.role': 'step' }, state: 'running', created: 0 }, 'n1');
    assert.deepEqual([c?.role, c?.identity, c?.sealed], ['step', undefined, false]);
  });
});
