// The job lifecycle across a restart of berthd: what a repeated hook call finds.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import { accountingRecords } from '../../services/agent/accounting/accounting-record';
import { JobTable } from '../../services/agent/jobs/job-table';
import type { JobRecord } from '../../services/agent/jobs/job-record';
import { harness, prologueInput } from './fakes/helpers';

describe('epilogue through a restart of berthd', () => {
  it('runs once when asked twice at the same time (the hook\'s retry, the sweep, a spooled epilog): one accounting record', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    const [a, b] = await Promise.all([h.jobs.epilogue('42'), h.jobs.epilogue('42', { settledLate: true })]);
    assert.deepEqual(a, b);
    assert.equal(h.accounting().length, 1);
    assert.equal(h.accounting()[0]!.SettledLate, false, 'the first caller\'s run: the epilog\'s own');
    await h.jobs.epilogue('42');
    assert.equal(h.accounting().length, 1);
  });

  it('marks the job ending in its checkpoint before it stops anything', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    const seen: string[] = [];
    const stop = h.engine.stop.bind(h.engine);
    h.engine.stop = async (id, grace) => {
      seen.push((JSON.parse(readFileSync(path.join(h.config.stateDir, 'jobs', '42.json'), 'utf8')) as JobRecord).state);
      return stop(id, grace);
    };
    await h.jobs.epilogue('42');
    assert.deepEqual(seen, ['ENDING']);
  });

  it('recovery keeps a job ending that berthd was ending when it stopped, and the retried epilogue accounts it by its steps', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    const s = h.ledger.start('42', { stepId: '0', taskId: 0, argv: ['true'], startTime: new Date().toISOString() })!;
    await h.ledger.end('42', s, { state: 'EXITED', exitCode: 0 });
    // berthd is killed during the epilogue, after the container went but before the record was written
    const ending = { ...h.jobs.get('42')!, state: 'ENDING' as const };
    h.table.checkpoint(ending);
    await h.engine.remove(ending.containerId);
    const fresh = h.newJobService(new JobTable(h.config.stateDir));
    await fresh.recover();
    assert.equal(fresh.get('42')!.state, 'ENDING');
    await fresh.epilogue('42');
    const [job] = h.accounting();
    assert.equal(job!.State, 'COMPLETED', 'not UNKNOWN: the job had ended normally');
    assert.equal(h.accounting().length, 2);
  });

  it('does not write the records again when the cut-off epilogue had written them', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    const job: JobRecord = { ...h.jobs.get('42')!, state: 'ENDING' };
    h.table.checkpoint(job);
    await h.engine.remove(job.containerId);
    // written, then berthd was killed before the checkpoint went
    new AccountingLog(h.config.accountingFile).append(accountingRecords(job, new Date().toISOString(), undefined));
    const fresh = h.newJobService(new JobTable(h.config.stateDir));
    await fresh.recover();
    await fresh.epilogue('42');
    assert.equal(h.accounting().length, 1);
    assert.equal(fresh.get('42'), undefined);
  });

  it('finds a record written just before, among many others, by its key only', () => {
    const h = harness();
    const log = new AccountingLog(h.config.accountingFile);
    const base = { ...accountingRecords({ jobId: '7', node: 'n1', startTime: '2026-05-01T10:00:00.000Z', steps: [], userContainers: [], containerId: '', containerName: '', state: 'ENDED', endTime: '', error: '', uid: 1, gid: 1, user: 'a', imageRef: '', imageDigest: '', workDir: '' } as JobRecord, '2026-05-01T11:00:00.000Z', undefined)[0]! };
    for (let i = 0; i < 2000; i++) log.append({ ...base, JobID: String(1000 + i) });
    log.append(base);
    assert.equal(log.hasJobRecord({ jobId: '7', node: 'n1', start: base.Start }), true);
    assert.equal(log.hasJobRecord({ jobId: '7', node: 'n2', start: base.Start }), false);
    assert.equal(log.hasJobRecord({ jobId: '7', node: 'n1', start: '2026-05-02T10:00:00.000Z' }), false, 'a requeued run of the same job id is another record');
    assert.ok(readFileSync(h.config.accountingFile, 'utf8').length > 1_000_000);
  });
});

describe('prologue through a restart of berthd', () => {
  it('makes the container again when the prologue that made it was cut off before it finished (no checkpoint)', async () => {
    const h = harness();
    const first = await h.jobs.prologue(prologueInput());
    rmSync(path.join(h.config.stateDir, 'jobs', '42.json')); // berthd killed after start, before the checkpoint
    const fresh = h.newJobService(new JobTable(h.config.stateDir));
    await fresh.recover();
    assert.equal(fresh.get('42')!.prologueCut, true);
    const again = await fresh.prologue(prologueInput());
    assert.equal(again.alreadyPrepared, false);
    assert.notEqual(again.job.containerId, first.job.containerId);
    assert.equal(await h.engine.inspect(first.job.containerId), undefined, 'the half-made container is gone');
    assert.equal(fresh.get('42')!.prologueCut, undefined);
    // and a completed one is returned as it is, after a restart too
    const fresher = h.newJobService(new JobTable(h.config.stateDir));
    await fresher.recover();
    const third = await fresher.prologue(prologueInput());
    assert.equal(third.alreadyPrepared, true);
    assert.equal(third.job.containerId, again.job.containerId);
  });
});

describe('steps through a restart of berthd', () => {
  it('a step prologue repeated after the restart replaces the record of the cut-off one', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    h.ledger.start('42', { stepId: '3', taskId: 0, argv: ['a.out'], startTime: new Date().toISOString() });
    const { jobs: fresh, ledger } = h.newNode(new JobTable(h.config.stateDir));
    await fresh.recover();
    assert.deepEqual(fresh.get('42')!.steps.map((s) => [s.stepId, s.state, s.cutByRestart]), [['3', 'KILLED', true]]);
    const again = ledger.start('42', { stepId: '3', taskId: 0, argv: ['a.out'], startTime: new Date().toISOString() })!;
    await ledger.end('42', again, { state: 'EXITED', exitCode: 0 });
    await fresh.epilogue('42');
    const steps = h.accounting().filter((r) => r.RecordType === 'step');
    assert.deepEqual(steps.map((r) => [r.StepID, r.State]), [['3', 'COMPLETED']]);
  });
});
