import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { jobLabels, stepContainerName } from '../../services/agent/containers/labels';
import { ContainerSeal } from '../../services/agent/containers/seal';
import { reconcileJobs, sweepOrphans } from '../../services/agent/housekeeping/orphans';
import { epilogSpoolDir, readSpooledEpilogs, spoolEpilog } from '../../services/shared/epilog-spool';
import { capturingLogger, DIGEST, harness, prologueInput } from './fakes/helpers';

const active = (...ids: string[]) => ({ activeJobs: async () => new Set(ids) });
const slurmDown = { activeJobs: async () => undefined };

/**
 * A node as berthd finds it at start: job 1 runs (its container and a container its user
 * made); job 2 ended while berthd was away; job 3 had only a step container (a plain
 * allocation with srun --container-image), never in the table; job 4 left only a container
 * its user made; job 9's "container" carries berth's labels but no seal.
 */
async function nodeAfterOutage() {
  const seal = new ContainerSeal(Buffer.alloc(32, 7));
  const h = harness({}, { seal });
  await h.jobs.prologue(prologueInput({ jobId: '1' }));
  await h.jobs.prologue(prologueInput({ jobId: '2' }));
  const s = h.ledger.start('2', { stepId: '0', taskId: 0, argv: ['sleep', '100'], startTime: new Date().toISOString() })!;
  await h.ledger.end('2', s, { state: 'EXITED', exitCode: 0 });
  const identity = {
    jobId: '3', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'x', imageDigest: `127.0.0.1:5000/berth/demo@${DIGEST}`, workDir: '',
    startTime: new Date().toISOString(), role: 'step' as const, stepId: '0',
  };
  const stepName = stepContainerName('n1', '3', { stepId: '0' });
  await h.engine.start(await h.engine.create({ name: stepName, body: { Image: 'x', Labels: seal.seal(stepName, jobLabels(identity)) } }));
  await h.engine.start(await h.engine.create({ name: 'alice-tool-1', body: { Image: 'x', Labels: { 'io.berth.job.id': '1', 'io.berth.role': 'user' } } }));
  await h.engine.start(await h.engine.create({ name: 'alice-tool-4', body: { Image: 'x', Labels: { 'io.berth.job.id': '4', 'io.berth.role': 'user' } } }));
  const fake = 'berth-n1-job-9';
  await h.engine.start(await h.engine.create({ name: fake, body: { Image: 'x', Labels: jobLabels({ ...identity, jobId: '9', role: undefined, stepId: undefined }) } }));
  // berthd restarts: a fresh job service rebuilds its table from the engine and checkpoints
  const { JobTable } = await import('../../services/agent/jobs/job-table');
  const fresh = h.newJobService(new JobTable(h.config.stateDir));
  await fresh.recover();
  const names = () => [...h.engine.containers.values()].map((c) => c.name).filter((n) => !n.includes('-probe-')).sort();
  return { h, seal, jobs: fresh, names };
}

describe('reconcile at start', () => {
  it('ends at once every job Slurm no longer runs here, found by the engine\'s labels as well as the table, and records each once, settled late', async () => {
    const { h, seal, jobs, names } = await nodeAfterOutage();
    const cap = capturingLogger();
    const r = await reconcileJobs({ jobs, source: active('1'), node: 'n1', graceMs: 0, dryRun: false, log: cap.log, engine: h.engine, seal, when: 'start' });
    assert.deepEqual(r.removed, ['2', '3', '4']);
    assert.deepEqual(names(), ['alice-tool-1', 'berth-n1-job-1', 'berth-n1-job-9']);
    assert.deepEqual(jobs.list().map((j) => j.jobId), ['1']);
    const records = h.accounting();
    assert.deepEqual(records.map((x) => [x.JobID, x.RecordType, x.SettledLate]), [['2', 'job', true], ['2', 'step', true]]);
    assert.equal(records[0]!.State, 'COMPLETED');
    const said = await cap.messages();
    assert.ok(said.includes('a container carries berth\'s labels without berth\'s seal: not trusted as berth\'s, left alone'), said.join('\n'));
    assert.equal(said.filter((m) => m === 'ended a job Slurm no longer runs on this node (found at start)').length, 3);

    // asked again (the next sweep), nothing more goes and nothing is recorded twice
    const again = await reconcileJobs({ jobs, source: active('1'), node: 'n1', graceMs: 0, dryRun: false, log: cap.log, engine: h.engine, seal, when: 'sweep' });
    assert.deepEqual(again.removed, []);
    assert.equal(h.accounting().length, 2);
  });

  it('removes nothing when Slurm cannot be asked, and says so', async () => {
    const { h, seal, jobs, names } = await nodeAfterOutage();
    const before = names();
    const cap = capturingLogger();
    const r = await reconcileJobs({ jobs, source: slurmDown, node: 'n1', graceMs: 0, dryRun: false, log: cap.log, engine: h.engine, seal, when: 'start' });
    assert.equal(r.skipped, 'slurm unavailable');
    assert.deepEqual(names(), before);
    assert.deepEqual(h.accounting(), []);
    assert.ok((await cap.messages()).includes('Slurm could not be asked which jobs run on this node: no container removed at start; berthd asks again shortly'));
  });

  it('settles spooled epilogs first, even when Slurm cannot be asked, with the epilog\'s time as the end', async () => {
    const { h, seal, jobs, names } = await nodeAfterOutage();
    const spoolDir = epilogSpoolDir(mkdtempSync(path.join(os.tmpdir(), 'berth-run-')), 'n1');
    const endedAt = new Date().toISOString(); // after job 2's start
    await new Promise((r) => setTimeout(r, 5));
    spoolEpilog(spoolDir, { jobId: '2', node: 'n1', time: endedAt, reason: 'No connection established; tried 80 times over 60.0 s' });
    spoolEpilog(spoolDir, { jobId: '1', node: 'n1', time: '2020-01-01T00:00:00.000Z', reason: 'an old run of job 1' }); // job 1 started here again since
    const r = await reconcileJobs({ jobs, source: slurmDown, node: 'n1', graceMs: 0, dryRun: false, log: h.log, engine: h.engine, seal, spoolDir, when: 'start' });
    assert.deepEqual(r.settled, ['2']);
    assert.ok(!names().includes('berth-n1-job-2'));
    assert.ok(names().includes('berth-n1-job-1'), 'a stale record does not end the job\'s new run');
    assert.deepEqual(readSpooledEpilogs(spoolDir).records, []);
    const [job] = h.accounting();
    assert.equal(job!.JobID, '2');
    assert.equal(job!.End, endedAt);
    assert.equal(job!.SettledLate, true);
  });
});

describe('orphan sweep, the backstop', () => {
  const later = new Date(Date.now() + 3600_000);

  it('also reads the engine: a job with only step containers is swept once past the grace period', async () => {
    const { h, seal, jobs, names } = await nodeAfterOutage();
    const young = await sweepOrphans({ jobs, source: active('1', '2', '4'), node: 'n1', graceMs: 60_000, dryRun: false, log: h.log, engine: h.engine, seal });
    assert.deepEqual(young.removed, []);
    const old = await sweepOrphans({ jobs, source: active('1', '2', '4'), node: 'n1', graceMs: 60_000, dryRun: false, log: h.log, engine: h.engine, seal, now: later });
    assert.deepEqual(old.removed, ['3']);
    assert.ok(!names().includes(stepContainerName('n1', '3', { stepId: '0' })));
    assert.deepEqual(h.accounting(), [], 'a job without a container of its own has no berth job record (sacct accounts its steps)');
  });
});
