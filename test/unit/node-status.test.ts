import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeStatus, type NodeStatusSources } from '../../services/agent/admin/node-status';
import type { JobRecord } from '../../services/agent/jobs/job-record';

const job = (jobId: string, state: JobRecord['state']) => ({ jobId, state }) as JobRecord;

function sources(over: Partial<NodeStatusSources> = {}): NodeStatusSources {
  return {
    node: 'n1', version: '9.9.9', startedAt: new Date('2026-03-01T10:00:00Z'), now: () => new Date('2026-03-01T11:00:05Z'),
    lifecycle: { phase: 'serving', detail: '' },
    drain: () => ({ drained: false, reason: '', since: '', by: '' }),
    jobs: () => [job('1', 'RUNNING'), job('2', 'RUNNING'), job('3', 'FAILED')],
    ping: async () => undefined,
    containers: async () => [{}, {}, {}] as never,
    images: async () => ({ images: [{ sizeBytes: 100 }, { sizeBytes: 50 }], usagePercent: 42.5 }),
    ...over,
  };
}

describe('node status', () => {
  it('counts running jobs, containers, images and uptime', async () => {
    const s = await nodeStatus(sources());
    assert.deepEqual([s.state, s.uptimeSeconds, s.jobsRunning, s.jobsTotal, s.containers, s.images, s.imageCacheBytes, s.diskUsagePercent, s.dockerdReachable],
      ['SERVING', 3605, 2, 3, 3, 2, 150, 42.5, true]);
  });

  it('shows an admin drain as DRAINING and berthd shutting down as STOPPING', async () => {
    const drained = await nodeStatus(sources({ drain: () => ({ drained: true, reason: 'disks', since: 'x', by: 'root' }) }));
    assert.equal(drained.state, 'DRAINING');
    assert.equal(drained.drain.reason, 'disks');
    assert.equal((await nodeStatus(sources({ lifecycle: { phase: 'draining', detail: 'SIGTERM' } }))).state, 'STOPPING');
    const rec = await nodeStatus(sources({ lifecycle: { phase: 'recovering', detail: 'dockerd not answering' } }));
    assert.deepEqual([rec.state, rec.stateDetail], ['RECOVERING', 'dockerd not answering']);
  });

  it('reports a dockerd that hangs instead of waiting for it', async () => {
    const began = Date.now();
    const s = await nodeStatus(sources({ ping: () => new Promise(() => undefined), dockerTimeoutMs: 100 }));
    assert.ok(Date.now() - began < 1000);
    assert.equal(s.dockerdReachable, false);
    assert.match(s.dockerdError, /dockerd did not answer within 100 ms/);
    assert.equal(s.jobsRunning, 2, 'what berthd knows itself is still there');
  });
});
