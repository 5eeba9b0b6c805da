import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sweepOrphans } from '../../services/agent/housekeeping/orphans';
import { JobCgroups } from '../../services/agent/runtime/job-cgroups';
import { harness, prologueInput } from './fakes/helpers';

describe('orphan sweep', () => {
  async function withJobs() {
    const h = harness();
    await h.jobs.prologue(prologueInput({ jobId: '1' }));
    await h.jobs.prologue(prologueInput({ jobId: '2' }));
    return h;
  }
  const later = new Date(Date.now() + 3600_000);

  it('ends jobs Slurm no longer runs here, after the grace period', async () => {
    const h = await withJobs();
    const r = await sweepOrphans({ jobs: h.jobs, engine: h.engine, source: { activeJobs: async () => new Set(['2']) }, node: 'n1', graceMs: 60_000, dryRun: false, log: h.log, now: later });
    assert.deepEqual(r.removed, ['1']);
    assert.deepEqual(h.jobs.list().map((j) => j.jobId), ['2']);
    assert.equal(h.accounting().length, 1);
  });

  it('keeps young jobs, keeps everything in dry-run, and removes nothing when Slurm cannot be asked', async () => {
    const h = await withJobs();
    const young = await sweepOrphans({ jobs: h.jobs, engine: h.engine, source: { activeJobs: async () => new Set() }, node: 'n1', graceMs: 60_000, dryRun: false, log: h.log });
    assert.deepEqual(young.orphans, []);
    const dry = await sweepOrphans({ jobs: h.jobs, engine: h.engine, source: { activeJobs: async () => new Set() }, node: 'n1', graceMs: 0, dryRun: true, log: h.log, now: later });
    assert.deepEqual(dry.orphans, ['1', '2']);
    assert.deepEqual(dry.removed, []);
    const blind = await sweepOrphans({ jobs: h.jobs, engine: h.engine, source: { activeJobs: async () => undefined }, node: 'n1', graceMs: 0, dryRun: false, log: h.log, now: later });
    assert.equal(blind.skipped, 'slurm unavailable');
    assert.equal(h.jobs.list().length, 2);
  });

  it('removes the cgroups a job left when its only containers were step containers and no epilogue came', async () => {
    const h = await withJobs();
    const root = mkdtempSync(path.join(tmpdir(), 'berth-orphan-cg-'));
    try {
      for (const c of ['memory', 'freezer', 'pids']) {
        for (const job of ['7', '2']) mkdirSync(path.join(root, c, 'berth', 'n1', `job_${job}`), { recursive: true });
      }
      // another node's cgroups on the same host are not this berthd's
      mkdirSync(path.join(root, 'memory', 'berth', 'n2', 'job_8'), { recursive: true });
      const cgroups = new JobCgroups('n1', root);
      assert.deepEqual([...cgroups.jobs().keys()].sort(), ['2', '7']);
      const ended: string[] = [];
      const end = async (jobId: string) => {
        ended.push(jobId);
        cgroups.remove(jobId);
      };
      const young = await sweepOrphans({ jobs: h.jobs, engine: h.engine, source: { activeJobs: async () => new Set(['1', '2']) }, node: 'n1', graceMs: 60_000, dryRun: false, log: h.log, cgroupJobs: () => cgroups.jobs(), end });
      assert.deepEqual(young.orphans, [], 'a cgroup made within the grace period stays');
      const r = await sweepOrphans({ jobs: h.jobs, engine: h.engine, source: { activeJobs: async () => new Set(['1', '2']) }, node: 'n1', graceMs: 60_000, dryRun: false, log: h.log, now: later, cgroupJobs: () => cgroups.jobs(), end });
      assert.deepEqual(r.removed, ['7']);
      assert.deepEqual(ended, ['7']);
      for (const c of ['memory', 'freezer', 'pids']) {
        assert.equal(existsSync(path.join(root, c, 'berth', 'n1', 'job_7')), false, `${c} cgroup of job 7 removed`);
        assert.equal(existsSync(path.join(root, c, 'berth', 'n1', 'job_2')), true, `${c} cgroup of running job 2 kept`);
      }
      assert.equal(existsSync(path.join(root, 'memory', 'berth', 'n2', 'job_8')), true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
