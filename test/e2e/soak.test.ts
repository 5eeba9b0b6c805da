// Issue 2/7's soak, the CI size: 60 jobs of every kind, 16 at a time, across the sandbox's three
// nodes (npm run soak runs the 500-job one). Nothing may be left: no container of a soak job
// on any engine, every job record on every node the job ran on exactly once, no node drained,
// and berthd's memory and open files flat.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSoak } from '../support/soak';

describe('soak: a mixed load leaves nothing behind', { timeout: 900_000 }, () => {
  it('runs 60 jobs of every kind with no leak, no lost or doubled record, no drain', async () => {
    const r = await runSoak({ jobs: 60, concurrency: 16, timeLimitEvery: 40 });
    assert.ok(r.jobsRun >= 60, `${r.jobsRun} jobs`);
    for (const kind of ['batch+berth-exec', 'native-in-job-container', 'step-container', 'docker-run', '2-node', 'scancel-mid-run', 'array', 'time-limit']) {
      assert.ok((r.kinds[kind] ?? 0) > 0, `no ${kind} job ran: ${JSON.stringify(r.kinds)}`);
    }
    assert.deepEqual(r.containersLeft, [], 'containers of ended jobs left on the engines');
    assert.deepEqual(r.recordsMissing, [], 'job records missing');
    assert.deepEqual(r.recordsDuplicated, [], 'job records doubled');
    assert.deepEqual(r.nodesDrained, [], 'nodes drained');
    assert.ok(r.prologMillis.count > 0, 'prologues were timed');
    for (const [n, end] of Object.entries(r.agents.atEnd)) {
      const at50 = r.agents.at50[n];
      if (!at50) continue;
      assert.ok(end.fds <= at50.fds + 10, `berthd ${n} open fds ${at50.fds} at job 50, ${end.fds} at the end`);
    }
  });
});
