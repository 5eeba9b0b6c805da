// The step ledger: a step's start and end on its job's record, the container's usage over the
// step, the job's checkpoint after each change, and the steps a restart of berthd cut.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { accountingRecords } from '../../services/agent/accounting/accounting-record';
import type { JobRecord } from '../../services/agent/jobs/job-record';
import { JobTable } from '../../services/agent/jobs/job-table';
import { cutByRestart, STEP_CUT_BY_RESTART, StepLedger } from '../../services/agent/jobs/step-ledger';
import { silentLogger } from '../../services/agent/logger';
import { FakeUsage } from './fakes/helpers';

function job(over: Partial<JobRecord> = {}): JobRecord {
  return {
    jobId: '7', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'demo', imageDigest: 'reg/demo@sha256:a', workDir: '', startTime: '2026-12-01T10:00:00.000Z',
    containerId: 'c7', containerName: 'berth-n1-job-7', state: 'RUNNING', endTime: '', error: '', steps: [], userContainers: [], ...over,
  };
}

function setup(over: Partial<JobRecord> = {}) {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'berth-ledger-'));
  const table = new JobTable(stateDir);
  table.put(job(over));
  const usage = new FakeUsage();
  const counts = { started: 0, ended: [] as string[] };
  const metrics = { stepStarted: () => void counts.started++, stepEnded: (s: string) => void counts.ended.push(s) };
  const ledger = new StepLedger({ table, log: silentLogger(), usage, metrics, now: () => new Date('2026-12-01T10:05:00.000Z') });
  /** the job's record as its checkpoint on disk has it (what a restarted berthd reads) */
  const saved = (): JobRecord => JSON.parse(readFileSync(path.join(stateDir, 'jobs', '7.json'), 'utf8')) as JobRecord;
  return { table, usage, ledger, saved, counts, stateDir };
}

describe('the step ledger', () => {
  it('records a step\'s start and end on the job and checkpoints each, with the container\'s CPU over the step', async () => {
    const { ledger, saved, usage, counts } = setup();
    const rec = ledger.start('7', { stepId: '0', taskId: 0, argv: ['a.out'], startTime: '2026-12-01T10:01:00.000Z' })!;
    assert.deepEqual(saved().steps.map((s) => [s.stepId, s.state]), [['0', 'RUNNING']]);
    await ledger.end('7', rec, { state: 'EXITED', exitCode: 2 });
    const [s] = saved().steps;
    assert.deepEqual([s!.state, s!.exitCode, s!.endTime], ['EXITED', 2, '2026-12-01T10:05:00.000Z']);
    // two reads of the container's cgroup, 1.5 CPU seconds apart; the peak of the second
    assert.deepEqual(usage.reads, ['c7', 'c7']);
    assert.deepEqual(s!.usage, { cpuNanos: 1_500_000_000, memoryPeakBytes: usage.peak, source: 'cgroup-v2' });
    assert.deepEqual([counts.started, counts.ended], [1, ['FAILED']]);
  });

  it('adds the Slurm task cgroups\' CPU over a step placed in them and takes their peak, read at the step\'s end at once', async () => {
    const { ledger, saved } = setup();
    const samples = [{ cpuNanos: 4_000_000_000, memoryPeakBytes: 60e6, source: 'cgroup-v1' as const }, { cpuNanos: 7_000_000_000, memoryPeakBytes: 280e6, source: 'cgroup-v1' as const }];
    const reads: string[] = [];
    let joined = false;
    const task = { dirs: { memory: '/m/task_0', cpuacct: '/c/task_0' }, joined: () => joined, read: (d: { memory: string }) => (reads.push(d.memory), samples.shift()) };
    const rec = ledger.start('7', { stepId: '', taskId: 0, argv: ['dd'], startTime: '' }, task)!;
    joined = true;
    const ending = ledger.end('7', rec, { state: 'EXITED', exitCode: 0 });
    assert.deepEqual(reads, ['/m/task_0', '/m/task_0'], 'both reads before the end awaits anything');
    await ending;
    const [s] = saved().steps;
    // the container's 1.5 s plus the task's 3 s; the task's peak over the container's
    assert.deepEqual(s!.usage, { cpuNanos: 4_500_000_000, memoryPeakBytes: 280e6, source: 'cgroup-v2', slurmTask: { cpuNanos: 3_000_000_000, memoryPeakBytes: 280e6 } });
  });

  it('counts only the container for a step that never joined its Slurm task cgroups', async () => {
    const { ledger, saved, usage } = setup();
    const task = { dirs: { memory: '/m', cpuacct: '/c' }, joined: () => false, read: () => ({ cpuNanos: 9e9, memoryPeakBytes: 9e9, source: 'cgroup-v1' as const }) };
    const rec = ledger.start('7', { stepId: '0', taskId: 0, argv: [], startTime: '' }, task)!;
    await ledger.end('7', rec, { state: 'EXITED', exitCode: 0 });
    assert.deepEqual(saved().steps[0]!.usage, { cpuNanos: 1_500_000_000, memoryPeakBytes: usage.peak, source: 'cgroup-v2' });
  });

  it('gives the job\'s record the container\'s usage plus what its placed steps used in Slurm\'s task cgroups', () => {
    const step = (slurmTask?: { cpuNanos: number; memoryPeakBytes: number }) => ({ stepId: '0', taskId: 0, argv: [], state: 'EXITED' as const, exitCode: 0, signal: '', startTime: '', endTime: '',
      usage: { cpuNanos: 1e9, memoryPeakBytes: 50e6, source: 'cgroup-v1' as const, ...(slurmTask ? { slurmTask } : {}) } });
    const j = job({ steps: [step({ cpuNanos: 2e9, memoryPeakBytes: 300e6 }), step(), step({ cpuNanos: 5e8, memoryPeakBytes: 10e6 })] });
    const [rec] = accountingRecords(j, '2026-12-01T10:06:00.000Z', { cpuNanos: 3e9, memoryPeakBytes: 100e6, source: 'cgroup-v1' });
    assert.deepEqual([rec!.TotalCPUSeconds, rec!.MaxRSSBytes], [5.5, 300e6]);
    const [plain] = accountingRecords(job({ steps: [step()] }), '2026-12-01T10:06:00.000Z', { cpuNanos: 3e9, memoryPeakBytes: 100e6, source: 'cgroup-v1' });
    assert.deepEqual([plain!.TotalCPUSeconds, plain!.MaxRSSBytes], [3, 100e6]);
  });

  it('records nothing for a job berthd does not hold', () => {
    const { ledger, counts } = setup();
    assert.equal(ledger.start('8', { stepId: '0', taskId: 0, argv: [], startTime: '' }), undefined);
    assert.equal(counts.started, 0);
  });

  it('still records the end when the cgroup cannot be read, without usage', async () => {
    const { ledger, saved, usage } = setup();
    usage.fail = true;
    const rec = ledger.start('7', { stepId: '0', taskId: 0, argv: [], startTime: '' })!;
    await ledger.end('7', rec, { state: 'KILLED', exitCode: 137, signal: 'SIGKILL' });
    const [s] = saved().steps;
    assert.deepEqual([s!.state, s!.signal, s!.usage], ['KILLED', 'SIGKILL', undefined]);
  });

  it('holds a native step open until its end comes, and settle waits for it (at most as long as told)', async () => {
    const { ledger, table } = setup();
    ledger.startNative('7', '1', ['srun', 'x']);
    let settled = false;
    const settling = ledger.settle('7', 5_000).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(settled, false);
    ledger.endNative('7', '1', { exitCode: 0, signal: 'SIGTERM' });
    await settling;
    const [s] = table.get('7')!.steps;
    assert.deepEqual([s!.state, s!.signal], ['KILLED', 'SIGTERM']);
    assert.ok(s!.usage, 'its usage was read before settle returned');
    ledger.startNative('7', '2', []);
    const t0 = Date.now();
    await ledger.settle('7', 150);
    assert.ok(Date.now() - t0 >= 150 && Date.now() - t0 < 2_000, 'gave up after the wait');
    ledger.forgetJob('7');
    const t1 = Date.now();
    await ledger.settle('7', 5_000);
    assert.ok(Date.now() - t1 < 1_000, 'a forgotten step is not waited for');
  });

  it('cuts the steps a restart found running, and their real end or a repeated start replaces the guess', async () => {
    const cut = cutByRestart([
      { stepId: '0', taskId: 0, argv: [], state: 'EXITED', exitCode: 0, signal: '', startTime: 'a', endTime: 'b' },
      { stepId: '1', taskId: 0, argv: [], state: 'RUNNING', exitCode: 0, signal: '', startTime: 'a', endTime: '' },
      { stepId: '2', taskId: 0, argv: [], state: 'RUNNING', exitCode: 0, signal: '', startTime: 'a', endTime: '' },
    ]);
    assert.deepEqual(cut.map((s) => [s.stepId, s.state, s.signal, s.cutByRestart ?? false]), [
      ['0', 'EXITED', '', false], ['1', 'KILLED', STEP_CUT_BY_RESTART, true], ['2', 'KILLED', STEP_CUT_BY_RESTART, true],
    ]);
    const { ledger, saved } = setup({ steps: cut });
    // step 1's end arrives after the restart (its slurmstepd outlived berthd)
    ledger.endNative('7', '1', { exitCode: 0, signal: '' });
    // step 2's prologue was repeated through the restart: the cut-off record goes
    ledger.startNative('7', '2', ['again']);
    await ledger.settle('7', 0);
    assert.deepEqual(saved().steps.map((s) => [s.stepId, s.state, s.signal, s.cutByRestart ?? false, s.argv]), [
      ['0', 'EXITED', '', false, []], ['1', 'EXITED', '', false, []], ['2', 'RUNNING', '', false, ['again']],
    ]);
  });

  it('logs a checkpoint it cannot write rather than failing the step', () => {
    const { ledger, table } = setup();
    table.checkpoint = () => {
      throw new Error('disk full');
    };
    assert.ok(ledger.start('7', { stepId: '0', taskId: 0, argv: [], startTime: '' }));
    assert.equal(table.get('7')!.steps.length, 1);
  });
});
