// A berth exec step's first process joins the freezer cgroup of the Slurm step that ran it and
// the memory and cpuacct cgroups of the task the client runs in: each path is built only from
// the admitted job's uid and id and a step and task name Slurm uses, it
// must already be there, and berth-init (which waits for berthd's SIGCONT) is never left
// waiting. berth-init itself is compiled from this tree and run for real here.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ownSlurmStep, ownSlurmTask } from '../../services/cli/slurm-env';
import { loadConfig } from '../../services/agent/config';
import { silentLogger } from '../../services/agent/logger';
import { freezerRootFor, PLACEMENT_WAIT_ENV, SlurmStepCgroups, slurmStepFreezerPath, slurmTaskCgroupPath } from '../../services/agent/steps/slurm-step-cgroup';
import { StepRunner } from '../../services/agent/steps/step-runner';
import { harness, prologueInput } from './fakes/helpers';

const log = silentLogger();
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

describe('the Slurm step freezer cgroup of a berth exec step', () => {
  it('is uid_<uid>/job_<job>/step_<step> below the root, for the step names Slurm uses', () => {
    for (const step of ['0', '17', 'batch', 'extern', 'interactive']) {
      assert.deepEqual(slurmStepFreezerPath('/sys/fs/cgroup/freezer/slurm_n1', 2001, '42', step), { dir: `/sys/fs/cgroup/freezer/slurm_n1/uid_2001/job_42/step_${step}` });
    }
  });

  it('has no path for a step id that is not one, a root or odd uid, or an odd job id', () => {
    for (const step of ['', '..', '../../job_43/step_0', '0/../1', '1 ', ' 1', '0x1', '-1', 'Batch', 'batch\n', 'step_0', '12345678901']) {
      assert.ok('reason' in slurmStepFreezerPath('/r', 2001, '42', step), JSON.stringify(step));
    }
    assert.match(JSON.stringify(slurmStepFreezerPath('/r', 2001, '42', '')), /SLURM_STEP_ID is not set/);
    for (const uid of [0, -1, 1.5, Number.NaN]) assert.ok('reason' in slurmStepFreezerPath('/r', uid, '42', '0'), String(uid));
    for (const job of ['', '4/2', '..', '42 ']) assert.ok('reason' in slurmStepFreezerPath('/r', 2001, job, '0'), job);
  });

  it('takes its root from the config, %n being the node; only %n, and no ..', () => {
    assert.equal(loadConfig(undefined, { node: 'n2' }).slurmFreezerCgroup, '/sys/fs/cgroup/freezer/slurm_%n');
    assert.equal(freezerRootFor('/sys/fs/cgroup/freezer/slurm_%n', 'n2'), '/sys/fs/cgroup/freezer/slurm_n2');
    assert.equal(freezerRootFor('/cg/freezer/slurm', 'n2'), '/cg/freezer/slurm');
    assert.equal(freezerRootFor('/cg/100%%/slurm_%n', 'c7'), '/cg/100%/slurm_c7');
    for (const bad of ['/cg/slurm_%h', '/cg/../slurm', 'cg/slurm']) assert.throws(() => loadConfig(undefined, { slurmFreezerCgroup: bad }), /slurmFreezerCgroup/, bad);
  });

  it('is used only when Slurm made it: never a missing directory or a link', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'berth-freezer-'));
    const cg = new SlurmStepCgroups({ freezerRoot: root, signal: () => assert.fail('no signal'), log });
    const job = { jobId: '42', uid: 2001 };
    assert.equal(cg.stepDir(job, 'batch', log), undefined);
    mkdirSync(path.join(root, 'uid_2001', 'job_42', 'step_batch'), { recursive: true });
    assert.equal(cg.stepDir(job, 'batch', log), path.join(root, 'uid_2001', 'job_42', 'step_batch'));
    mkdirSync(path.join(root, 'elsewhere'));
    symlinkSync(path.join(root, 'elsewhere'), path.join(root, 'uid_2001', 'job_42', 'step_0'));
    assert.equal(cg.stepDir(job, '0', log), undefined);
    assert.equal(cg.stepDir(job, '../step_batch', log), undefined);
    assert.equal(new SlurmStepCgroups({ freezerRoot: undefined, signal: () => undefined, log }).stepDir(job, 'batch', log), undefined);
  });
});

describe('the Slurm task memory and cpuacct cgroups of a berth exec step', () => {
  it('are step_<step>/task_<n> below the job\'s, for a task number and nothing else', () => {
    assert.deepEqual(slurmTaskCgroupPath('/sys/fs/cgroup/memory/slurm_n1', 2001, '42', 'batch', '0'), { dir: '/sys/fs/cgroup/memory/slurm_n1/uid_2001/job_42/step_batch/task_0' });
    assert.deepEqual(slurmTaskCgroupPath('/r', 2001, '42', '3', '17'), { dir: '/r/uid_2001/job_42/step_3/task_17' });
    for (const task of ['', '..', '0/..', 'x', '-1', '1 ', '12345678901']) assert.ok('reason' in slurmTaskCgroupPath('/r', 2001, '42', '0', task), JSON.stringify(task));
    assert.ok('reason' in slurmTaskCgroupPath('/r', 0, '42', '0', '0'), 'root\'s is never joined');
    assert.ok('reason' in slurmTaskCgroupPath('/r', 2001, '42', '../x', '0'));
  });

  it('take their roots from the config (memory and cpuacct by default; one left out is not joined)', () => {
    assert.deepEqual(loadConfig(undefined, { node: 'n2' }).slurmTaskCgroups, { memory: '/sys/fs/cgroup/memory/slurm_%n', cpuacct: '/sys/fs/cgroup/cpuacct/slurm_%n' });
    for (const bad of [{ memory: '/cg/../slurm' }, { cpuacct: 'cg' }, { memory: '/cg/%u' }, { devices: '/cg/devices/slurm' }]) {
      assert.throws(() => loadConfig(undefined, { slurmTaskCgroups: bad } as never), /slurmTaskCgroups/, JSON.stringify(bad));
    }
  });

  it('are joined only where Slurm made them, beside the step\'s freezer', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 'berth-slurm-cg-'));
    const root = (c: string) => path.join(base, c, 'slurm_n1');
    const job = { jobId: '42', uid: 2001 };
    const cg = new SlurmStepCgroups({ freezerRoot: root('freezer'), taskRoots: { memory: root('memory'), cpuacct: root('cpuacct') }, signal: () => undefined, log });
    assert.equal(cg.placement(job, 'batch', '0', log), undefined, 'nothing there: nothing to wait for');
    mkdirSync(path.join(root('memory'), 'uid_2001', 'job_42', 'step_batch', 'task_0'), { recursive: true });
    assert.deepEqual(cg.placement(job, 'batch', '0', log), { dirs: [path.join(root('memory'), 'uid_2001/job_42/step_batch/task_0')], task: { memory: path.join(root('memory'), 'uid_2001/job_42/step_batch/task_0') } });
    for (const c of ['freezer', 'cpuacct']) mkdirSync(path.join(root(c), 'uid_2001', 'job_42', 'step_batch', c === 'freezer' ? '' : 'task_0'), { recursive: true });
    const all = cg.placement(job, 'batch', '0', log)!;
    assert.deepEqual(all.dirs, [path.join(root('freezer'), 'uid_2001/job_42/step_batch'), path.join(root('memory'), 'uid_2001/job_42/step_batch/task_0'), path.join(root('cpuacct'), 'uid_2001/job_42/step_batch/task_0')]);
    assert.deepEqual(cg.placement(job, 'batch', '1', log)!.dirs, [path.join(root('freezer'), 'uid_2001/job_42/step_batch')], 'another task: the step\'s freezer only');
    assert.deepEqual(cg.placement(job, 'batch', '', log)!.task, {});
    const freezerOnly = new SlurmStepCgroups({ freezerRoot: root('freezer'), signal: () => undefined, log });
    assert.deepEqual(freezerOnly.placement(job, 'batch', '0', log)!.task, {});
  });
});

describe('the client\'s own Slurm task', () => {
  const cgroup = '12:pids:/berth/n1/job_42/abc\n6:freezer:/slurm_n1/uid_2001/job_42/step_batch\n4:memory:/slurm_n1/uid_2001/job_42/step_batch/task_3\n';
  it('is the task_N of its memory cgroup in its own step', () => {
    assert.equal(ownSlurmTask('42', 'batch', cgroup), '3');
    assert.equal(ownSlurmTask('42', '0', cgroup), '', 'another step');
    assert.equal(ownSlurmTask('43', 'batch', cgroup), '', 'another job');
    assert.equal(ownSlurmTask('42', '', cgroup), '', 'in no step');
    assert.equal(ownSlurmTask('42', 'batch', '4:memory:/slurm_n1/uid_2001/job_42/step_batch\n'), '', 'no task cgroup (no task/cgroup)');
    assert.equal(ownSlurmTask('42', 'batch', '0::/user.slice\n'), '');
  });
});

describe('the client\'s own Slurm step', () => {
  const cgroup = (freezer: string) => `12:pids:/berth/n1/job_42/abc\n6:freezer:${freezer}\n4:memory:/slurm_n1/uid_2001/job_42/step_batch/task_0\n1:name=systemd:/user.slice\n`;
  it('is the step_NAME of its freezer cgroup in its own job (a batch script has no SLURM_STEP_ID)', () => {
    assert.equal(ownSlurmStep('42', cgroup('/slurm_n1/uid_2001/job_42/step_batch')), 'batch');
    assert.equal(ownSlurmStep('42', cgroup('/slurm/uid_2001/job_42/step_3')), '3');
    assert.equal(ownSlurmStep('42', cgroup('/slurm_n1/uid_2001/job_42/step_extern')), 'extern');
    assert.equal(ownSlurmStep('42', '3:cpuacct,freezer:/slurm/uid_2001/job_42/step_0\n'), '0');
  });
  it('is none outside a step of that job', () => {
    assert.equal(ownSlurmStep('42', cgroup('/slurm_n1/uid_2001/job_43/step_0')), '');
    assert.equal(ownSlurmStep('42', cgroup('/')), '');
    assert.equal(ownSlurmStep('42', cgroup('/user.slice')), '');
    assert.equal(ownSlurmStep('42', '0::/user.slice/session-3.scope\n'), '', 'cgroup v2: no freezer line');
    assert.equal(ownSlurmStep('42', ''), '');
  });
});

describe('placing a step', () => {
  function fakeProc(pid: number, sigBlk: string | undefined): string {
    const proc = mkdtempSync(path.join(os.tmpdir(), 'berth-proc-'));
    if (sigBlk !== undefined) {
      mkdirSync(path.join(proc, String(pid)));
      writeFileSync(path.join(proc, String(pid), 'status'), `Name:\tberth-init\nSigPnd:\t0000000000000000\nSigBlk:\t${sigBlk}\nSigIgn:\t0000000000000000\n`);
    }
    return proc;
  }
  function stepDir(): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-step-'));
    writeFileSync(path.join(dir, 'cgroup.procs'), '');
    return dir;
  }

  it('writes the pid to cgroup.procs once berth-init waits (SIGCONT blocked), then continues it', async () => {
    const signals: string[] = [];
    const dir = stepDir();
    const cg = new SlurmStepCgroups({ freezerRoot: '/unused', proc: fakeProc(777, '0000000000020000'), signal: (pid, s) => signals.push(`${pid}:${s}`), log });
    assert.equal(await cg.place(777, dir, log), true);
    assert.equal(readFileSync(path.join(dir, 'cgroup.procs'), 'utf8'), '777');
    assert.deepEqual(signals, ['777:SIGCONT']);
  });

  it('continues it when the write fails, and sends no SIGCONT to a process that never waited', async () => {
    const signals: string[] = [];
    const cg = new SlurmStepCgroups({ freezerRoot: '/unused', proc: fakeProc(777, '0000000000020000'), signal: (pid, s) => signals.push(`${pid}:${s}`), log });
    assert.equal(await cg.place(777, path.join(os.tmpdir(), 'berth-no-such-dir', 'x'), log), false);
    assert.deepEqual(signals, ['777:SIGCONT']);
    const old = new SlurmStepCgroups({ freezerRoot: '/unused', proc: fakeProc(778, '0000000000000000'), signal: (pid, s) => signals.push(`${pid}:${s}`), log });
    const dir = stepDir();
    const t0 = Date.now();
    assert.equal(await old.place(778, dir, log), true, 'an older berth-init is still placed, late');
    assert.ok(Date.now() - t0 < 3_000);
    assert.deepEqual(signals, ['777:SIGCONT']);
  });

  it('writes the pid to every one of its cgroups, telling of each it joined', async () => {
    const dirs = [stepDir(), path.join(os.tmpdir(), 'berth-no-such-dir', 'y'), stepDir()];
    const joined: string[] = [];
    const cg = new SlurmStepCgroups({ freezerRoot: '/unused', proc: fakeProc(780, '0000000000020000'), signal: () => undefined, log });
    assert.equal(await cg.place(780, dirs, log, (d) => joined.push(d)), false, 'not every one');
    assert.deepEqual(joined, [dirs[0], dirs[2]]);
    for (const d of [dirs[0]!, dirs[2]!]) assert.equal(readFileSync(path.join(d, 'cgroup.procs'), 'utf8'), '780');
  });

  it('leaves a process that is gone alone: its pid may be another\'s', async () => {
    const cg = new SlurmStepCgroups({ freezerRoot: '/unused', proc: fakeProc(779, undefined), signal: () => assert.fail('no signal'), log });
    const dir = stepDir();
    assert.equal(await cg.place(779, dir, log), false);
    assert.equal(readFileSync(path.join(dir, 'cgroup.procs'), 'utf8'), '');
  });
});

describe('berth exec steps and their Slurm step', () => {
  async function start(stepId: string, withDir: boolean) {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const root = mkdtempSync(path.join(os.tmpdir(), 'berth-freezer-'));
    const dir = path.join(root, `uid_${job.uid}`, `job_${job.jobId}`, `step_${stepId}`);
    if (withDir) mkdirSync(dir, { recursive: true });
    const order: string[] = [];
    const proc = mkdtempSync(path.join(os.tmpdir(), 'berth-proc-'));
    mkdirSync(path.join(proc, '4242'));
    writeFileSync(path.join(proc, '4242', 'status'), 'SigBlk:\t0000000000020000\n');
    const signal = (pid: number, s: NodeJS.Signals) => order.push(`${pid}:${s}`);
    const cg = new SlurmStepCgroups({ freezerRoot: root, proc, signal, log: h.log });
    const runner = new StepRunner(h.engine, h.ledger, h.log, [], signal, undefined, cg);
    const { step } = await runner.start(job, { stepId, taskId: 0, argv: ['true'], cwd: '/', env: [], tty: false }, { name: 'alice', home: '/home/alice' }, { stdout: () => undefined, stderr: () => undefined });
    return { step, dir, order, exec: h.engine.execs[0]! };
  }

  it('asks berth-init to wait, places it, continues it, and only then sends the signals that came meanwhile', async () => {
    const { step, dir, order, exec } = await start('batch', true);
    assert.ok(exec.opts.env.includes(`${PLACEMENT_WAIT_ENV}=5000`));
    assert.deepEqual(exec.opts.cmd.slice(0, 3), ['/.berth/init', 'exec', '--']);
    step.signal('SIGTERM');
    for (let i = 0; i < 100 && order.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(readFileSync(path.join(dir, 'cgroup.procs'), 'utf8'), '4242');
    assert.deepEqual(order, ['4242:SIGCONT', '-4242:SIGTERM']);
  });

  it('takes the step the client found itself in over SLURM_STEP_ID, which a batch script lacks', async () => {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const root = mkdtempSync(path.join(os.tmpdir(), 'berth-freezer-'));
    mkdirSync(path.join(root, `uid_${job.uid}`, `job_${job.jobId}`, 'step_batch'), { recursive: true });
    const cg = new SlurmStepCgroups({ freezerRoot: root, signal: () => undefined, log: h.log });
    const runner = new StepRunner(h.engine, h.ledger, h.log, [], () => undefined, undefined, cg);
    await runner.start(job, { stepId: '', slurmStep: 'batch', taskId: 0, argv: ['true'], cwd: '/', env: [], tty: false }, { name: 'alice', home: '/home/alice' }, { stdout: () => undefined, stderr: () => undefined });
    assert.ok(h.engine.execs[0]!.opts.env.includes(`${PLACEMENT_WAIT_ENV}=5000`));
  });

  it('places it in the task\'s memory and cpuacct cgroups the client found itself in, beside the step\'s freezer', async () => {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const base = mkdtempSync(path.join(os.tmpdir(), 'berth-slurm-cg-'));
    const dir = (c: string) => path.join(base, c, `uid_${job.uid}`, `job_${job.jobId}`, 'step_batch', c === 'freezer' ? '' : 'task_0');
    for (const c of ['freezer', 'memory', 'cpuacct']) {
      mkdirSync(dir(c), { recursive: true });
      writeFileSync(path.join(dir(c), 'cgroup.procs'), '');
    }
    const proc = mkdtempSync(path.join(os.tmpdir(), 'berth-proc-'));
    mkdirSync(path.join(proc, '4242'));
    writeFileSync(path.join(proc, '4242', 'status'), 'SigBlk:\t0000000000020000\n');
    const cg = new SlurmStepCgroups({ freezerRoot: path.join(base, 'freezer'), taskRoots: { memory: path.join(base, 'memory'), cpuacct: path.join(base, 'cpuacct') }, proc, signal: () => undefined, log: h.log });
    const runner = new StepRunner(h.engine, h.ledger, h.log, [], () => undefined, undefined, cg);
    await runner.start(job, { stepId: '', slurmStep: 'batch', slurmTask: '0', taskId: 0, argv: ['true'], cwd: '/', env: [], tty: false }, { name: 'alice', home: '/home/alice' }, { stdout: () => undefined, stderr: () => undefined });
    for (let i = 0; i < 100 && readFileSync(path.join(dir('cpuacct'), 'cgroup.procs'), 'utf8') === ''; i++) await new Promise((r) => setTimeout(r, 5));
    for (const c of ['freezer', 'memory', 'cpuacct']) assert.equal(readFileSync(path.join(dir(c), 'cgroup.procs'), 'utf8'), '4242', c);
  });

  it('does not make berth-init wait when there is no step cgroup to join', async () => {
    const { exec } = await start('0', false);
    assert.ok(!exec.opts.env.some((e) => e.startsWith(`${PLACEMENT_WAIT_ENV}=`)));
    const outside = await start('', false);
    assert.ok(!outside.exec.opts.env.some((e) => e.startsWith(`${PLACEMENT_WAIT_ENV}=`)));
  });
});

describe('berth-init exec waiting to be placed (compiled from this tree)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-init-unit-'));
  const init = path.join(dir, 'berth-init');
  execFileSync('gcc', ['-O2', '-Wall', '-Werror', '-o', init, path.join(REPO, 'scripts/native/berth-init.c')]);

  function run(waitMs: string, cont: (pid: number) => void): Promise<{ out: string; ms: number }> {
    const marker = path.join(dir, `ran-${Math.random()}`);
    const t0 = Date.now();
    const child = spawn(init, ['exec', '--', 'sh', '-c', `echo "env=$${PLACEMENT_WAIT_ENV} $(grep SigBlk /proc/self/status)"; touch ${marker}`], { env: { PATH: process.env.PATH, [PLACEMENT_WAIT_ENV]: waitMs }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    cont(child.pid!);
    return new Promise((resolve) => child.on('exit', () => resolve({ out: out.trim(), ms: Date.now() - t0 })));
  }

  it('runs the command only after SIGCONT, with SIGCONT blocked while it waits and not after, the variable gone', async () => {
    const cg = new SlurmStepCgroups({ freezerRoot: '/unused', signal: (pid, s) => process.kill(pid, s), log });
    const target = mkdtempSync(path.join(os.tmpdir(), 'berth-step-'));
    writeFileSync(path.join(target, 'cgroup.procs'), '');
    let placed: Promise<boolean> | undefined;
    const r = await run('5000', (pid) => {
      placed = new Promise((res) => setTimeout(res, 300)).then(() => {
        assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), /^SigBlk:\s*0*20000$/m, 'waiting with SIGCONT blocked');
        return cg.place(pid, target, log);
      });
    });
    assert.equal(await placed, true);
    assert.equal(r.out, 'env= SigBlk:\t0000000000000000');
    assert.ok(r.ms >= 300 && r.ms < 4_000, `${r.ms} ms`);
  });

  it('runs the command anyway once the wait is over, and at once for a value out of range', async () => {
    const late = await run('400', () => undefined);
    assert.ok(late.ms >= 400 && late.ms < 3_000, `${late.ms} ms`);
    assert.match(late.out, /^env= /);
    const bad = await run('99999999', () => undefined);
    assert.ok(bad.ms < 300, `${bad.ms} ms`);
  });
});
