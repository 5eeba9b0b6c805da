import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sweepOrphans } from '../../services/agent/housekeeping/orphans';
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
});
