// berth trusts a container as its own only with a seal its key made over the container's name and identity.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ContainerSeal, SEAL_LABEL } from '../../services/agent/containers/seal';
import { jobLabels } from '../../services/agent/containers/labels';
import { harness, prologueInput } from './fakes/helpers';

const labels = jobLabels({ jobId: '42', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'r/x:1', imageDigest: 'r/x@sha256:1', workDir: '/w', startTime: 't' });

describe('container seal', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-seal-'));
  const seal = ContainerSeal.loadOrCreate(dir);

  it('keeps its key root-only, and the same key across restarts', () => {
    assert.equal(statSync(path.join(dir, 'seal.key')).mode & 0o777, 0o600);
    const again = ContainerSeal.loadOrCreate(dir);
    assert.ok(again.verify('berth-n1-job-42', seal.seal('berth-n1-job-42', labels)));
  });

  it('breaks when the name, an identity label or the key differ, or the seal is missing', () => {
    const sealed = seal.seal('berth-n1-job-42', labels);
    assert.ok(seal.verify('/berth-n1-job-42', sealed));
    assert.ok(!seal.verify('berth-n1-job-43', sealed));
    assert.ok(!seal.verify('berth-n1-job-42', { ...sealed, 'io.berth.uid': '0' }));
    assert.ok(!seal.verify('berth-n1-job-42', { ...sealed, 'io.berth.job.id': '7' }));
    assert.ok(!seal.verify('berth-n1-job-42', labels));
    assert.ok(!seal.verify('berth-n1-job-42', { ...sealed, [SEAL_LABEL]: 'x' }));
    assert.ok(!ContainerSeal.loadOrCreate(mkdtempSync(path.join(os.tmpdir(), 'berth-seal-'))).verify('berth-n1-job-42', sealed));
  });

  it("recovery rebuilds the job from a sealed container and ignores one with berth's labels but no seal", async () => {
    const h = harness({}, { seal });
    const res = await h.jobs.prologue(prologueInput());
    assert.ok(seal.verify(res.job.containerName, h.engine.containers.get(res.job.containerId)!.labels));
    // a forged twin: berth's labels and name, no seal
    const forged = await h.engine.create({ name: 'berth-n1-job-43', body: { Image: 'x', Labels: { ...labels, 'io.berth.job.id': '43' } } });
    await h.engine.start(forged);
    const fresh = h.newJobService(new (await import('../../services/agent/jobs/job-table')).JobTable(path.join(h.dir, 'state2')));
    await fresh.recover();
    assert.deepEqual(fresh.list().map((j) => j.jobId), ['42']);
  });
});
