import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildJobContainerSpec } from '../../services/agent/containers/job-container-spec';
import { jobFromLabels, LABEL } from '../../services/agent/containers/labels';

const identity = {
  jobId: '42', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'reg:5000/demo:1', imageDigest: 'reg:5000/demo@sha256:' + 'a'.repeat(64),
  workDir: '/home/alice/run', startTime: '2026-11-29T00:00:00.000Z',
};

function spec(over: Partial<Parameters<typeof buildJobContainerSpec>[0]> = {}) {
  return buildJobContainerSpec({
    identity, image: identity.imageDigest, supplementaryGids: [2001, 2100], cpus: 2, memoryBytes: 1 << 30,
    devices: ['/dev/infiniband/uverbs0', '/dev/infiniband/rdma_cm'], mounts: [{ source: '/scratch', target: '/scratch', readOnly: true }],
    initBinary: '/usr/local/lib/berth/berth-init', memlockBytes: -1,
    userFiles: { passwd: '/var/lib/berth/jobs/42/passwd', group: '/var/lib/berth/jobs/42/group' }, ...over,
  });
}

describe('job container spec', () => {
  const s = spec();
  const hc = s.body.HostConfig as Record<string, unknown>;

  it('has a deterministic name and labels that rebuild the job', () => {
    assert.equal(s.name, 'berth-n1-job-42');
    assert.deepEqual(jobFromLabels(s.body.Labels as Record<string, string>), { ...identity, containerWorkdir: '', envNames: [], name: '', mountTargets: [] });
    assert.equal((s.body.Labels as Record<string, string>)[LABEL.agentVersion], '0.1.0');
  });

  it("runs as the job's numeric uid:gid with its supplementary groups", () => {
    assert.equal(s.body.User, '2001:2001');
    assert.deepEqual(hc.GroupAdd, ['2100']);
  });

  it('drops every capability, forbids new privileges and privileged mode', () => {
    assert.deepEqual(hc.CapDrop, ['ALL']);
    assert.deepEqual(hc.CapAdd, []);
    assert.deepEqual(hc.SecurityOpt, ['no-new-privileges']);
    assert.equal(hc.Privileged, false);
  });

  it('uses the host network, the RDMA devices and an unlimited memlock', () => {
    assert.equal(hc.NetworkMode, 'host');
    assert.deepEqual((hc.Devices as { PathOnHost: string }[]).map((d) => d.PathOnHost), ['/dev/infiniband/uverbs0', '/dev/infiniband/rdma_cm']);
    assert.deepEqual(hc.Ulimits, [{ Name: 'memlock', Soft: -1, Hard: -1 }]);
  });

  it("mounts berth-init, the job's passwd and group, the working directory and the site mounts", () => {
    assert.deepEqual(hc.Binds, [
      '/usr/local/lib/berth/berth-init:/.berth/init:ro', '/var/lib/berth/jobs/42/passwd:/etc/passwd:ro', '/var/lib/berth/jobs/42/group:/etc/group:ro',
      '/home/alice/run:/home/alice/run', '/scratch:/scratch:ro',
    ]);
    assert.deepEqual(s.body.Entrypoint, ['/.berth/init', 'pause']);
    assert.equal(s.body.WorkingDir, '/home/alice/run');
  });

  it("limits CPU and memory to the job's allocation, and only when there is one", () => {
    assert.equal(hc.NanoCpus, 2_000_000_000);
    assert.equal(hc.Memory, 1 << 30);
    assert.equal(hc.MemorySwap, 1 << 30);
    const unlimited = spec({ cpus: 0, memoryBytes: 0 }).body.HostConfig as Record<string, unknown>;
    assert.equal(unlimited.NanoCpus, undefined);
    assert.equal(unlimited.Memory, undefined);
  });

  it('runs from the digest, never the tag', () => {
    assert.equal(s.body.Image, identity.imageDigest);
  });
});

describe('memlock limit', () => {
  it('is unlimited when the agent may raise it, else the node hard limit', async () => {
    const { memlockFor, readOwnMemlock } = await import('../../services/agent/containers/memlock');
    const limits = 'Limit Soft Limit Hard Limit Units\nMax locked memory         8388608              8388608              bytes\n';
    assert.deepEqual(readOwnMemlock('CapEff:\t000001fffeffffff\n', limits), { hardBytes: 8388608, canRaise: false });
    assert.deepEqual(readOwnMemlock('CapEff:\t000001ffffffffff\n', limits), { hardBytes: 8388608, canRaise: true });
    assert.deepEqual(memlockFor(-1, { hardBytes: 8388608, canRaise: true }), { bytes: -1 });
    assert.deepEqual(memlockFor(-1, { hardBytes: 8388608, canRaise: false }), { bytes: 8388608, clampedFrom: -1 });
    assert.deepEqual(memlockFor(4096, { hardBytes: 8388608, canRaise: false }), { bytes: 4096 });
    assert.deepEqual(memlockFor(-1, { hardBytes: -1, canRaise: false }), { bytes: -1 });
  });
});
