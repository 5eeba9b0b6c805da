// The records native steps leave for berthd when they join their job's container without
// asking it (services/agent/steps/step-spool.ts), and the job's container published for them
// (JOB.job, steps/task-files.ts, steps/step-containers.ts).
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import { JobService } from '../../services/agent/jobs/job-service';
import { JobTable } from '../../services/agent/jobs/job-table';
import { StepLedger } from '../../services/agent/jobs/step-ledger';
import { StepContainers } from '../../services/agent/steps/step-containers';
import { formatSpooledStep, parseSpooledStep, StepSpool } from '../../services/agent/steps/step-spool';
import { TaskFiles } from '../../services/agent/steps/task-files';
import { capturingLogger, DIGEST, harness, prologueInput } from './fakes/helpers';

const T0 = Date.parse('2026-12-01T10:00:00.123Z');

/** berthd's parts for one node, with the step spool and the job file wired as main.ts wires them */
function node() {
  const h = harness();
  const { log, lines } = capturingLogger();
  const spoolDir = path.join(h.dir, 'run', 'n1', 'step-spool');
  const files = new TaskFiles(path.join(h.dir, 'run', 'n1', 'tasks'));
  const build = (table = h.table) => {
    const ledger = new StepLedger({ table, log, usage: h.usage });
    const steps = new StepContainers({ factory: h.factory, ledger, table, engine: h.engine, files, node: 'n1', log });
    const spool = new StepSpool({ dir: spoolDir, ledger, table, log });
    const jobs = new JobService({
      config: h.config, engine: h.engine, factory: h.factory, ledger, table, accounting: new AccountingLog(h.config.accountingFile), log, stepSpool: spool,
      tasks: { removeJob: (id) => files.removeJob(id), publishJob: (id) => steps.publishJob(id), withdrawJob: (id) => steps.withdrawJob(id) },
    });
    return { ledger, steps, spool, jobs };
  };
  mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
  /** what the plugin does: a temporary file renamed over JOB.STEP */
  const leave = (name: string, text: string, mode = 0o600): string => {
    const tmp = path.join(spoolDir, `.${name}.tmp`);
    writeFileSync(tmp, text);
    chmodSync(tmp, mode);
    renameSync(tmp, path.join(spoolDir, name));
    return path.join(spoolDir, name);
  };
  return { h, log, lines, spoolDir, files, build, leave, ...build() };
}

describe('the step spool format', () => {
  it('reads back what it writes: the command with its separators, newlines and backslashes, the times and the wait status', () => {
    const argv = ['sh', '-c', 'printf "a\\\\b\nc"', ''];
    const start = parseSpooledStep('7.3', formatSpooledStep({ jobId: '7', stepId: '3', argv, startMs: T0 }));
    assert.deepEqual(start, { jobId: '7', stepId: '3', argv, startMs: T0 });
    const ended = (status?: number) => parseSpooledStep('7.batch', formatSpooledStep({ jobId: '7', stepId: 'batch', argv: ['x'], startMs: T0, end: { atMs: T0 + 5, waitStatus: status } }));
    assert.deepEqual(ended(3 << 8).end, { atMs: T0 + 5, outcome: { exitCode: 3, signal: '' } });
    assert.deepEqual(ended(9).end, { atMs: T0 + 5, outcome: { exitCode: 137, signal: 'SIGKILL' } });
    assert.deepEqual(ended(undefined).end, { atMs: T0 + 5 }, 'no status given: none recorded');
    assert.deepEqual(parseSpooledStep('7.0', `job=7\nstep=0\nstart_ms=${T0}\nargv=\nlater=ignored\n`).argv, []);
  });

  it('reads the lines as the plugin writes them', () => {
    const text = `job=12\nstep=0\nstart_ms=${T0}\nargv=echo\x1fa\\nb\x1fc\\\\d\nend_ms=${T0 + 9}\nstatus=256\n`;
    assert.deepEqual(parseSpooledStep('12.0', text), { jobId: '12', stepId: '0', argv: ['echo', 'a\nb', 'c\\d'], startMs: T0, end: { atMs: T0 + 9, outcome: { exitCode: 1, signal: '' } } });
  });

  it('refuses a record that is not what its name says, has no start, a bad id or a line that is not key=value', () => {
    assert.throws(() => parseSpooledStep('7.1', `job=7\nstep=0\nstart_ms=${T0}\n`), /not the one its name says/);
    assert.throws(() => parseSpooledStep('7.0', 'job=7\nstep=0\n'), /start_ms '' is not a time/);
    assert.throws(() => parseSpooledStep('7.0', `job=7x\nstep=0\nstart_ms=${T0}\n`), /7x/);
    assert.throws(() => parseSpooledStep('7.0', `job=7\nstep=0\nstart_ms=${T0}\nend_ms=soon\n`), /end_ms 'soon'/);
    assert.throws(() => parseSpooledStep('7.0', 'garbage'), /not key=value/);
  });
});

describe('native steps recorded from the step spool', () => {
  it("records a step's start and end with the plugin's times and command, removes the record, and accounts for it as a step berthd was asked about", async () => {
    const n = node();
    await n.jobs.prologue(prologueInput());
    const file = n.leave('42.0', formatSpooledStep({ jobId: '42', stepId: '0', argv: ['sh', '-c', 'exit 3'], startMs: T0 }));
    assert.equal(n.spool.drain(), 1);
    assert.ok(existsSync(file), 'kept until the end is in');
    assert.deepEqual(n.h.table.get('42')!.steps.map((s) => [s.state, s.startTime]), [['RUNNING', '2026-12-01T10:00:00.123Z']]);
    assert.equal(n.spool.drain(), 1, 'read again (a second event for one file)');
    assert.equal(n.h.table.get('42')!.steps.length, 1, 'recorded once');
    n.leave('42.0', formatSpooledStep({ jobId: '42', stepId: '0', argv: ['sh', '-c', 'exit 3'], startMs: T0, end: { atMs: T0 + 2000, waitStatus: 3 << 8 } }));
    n.spool.drain();
    assert.ok(!existsSync(file), 'removed once the end is in');
    await n.jobs.epilogue('42');
    const step = n.h.accounting().find((r) => r.RecordType === 'step')!;
    assert.deepEqual([step.StepID, step.State, step.ExitCode, step.Argv, step.Start, step.End],
      ['0', 'FAILED', '3:0', ['sh', '-c', 'exit 3'], '2026-12-01T10:00:00.123Z', '2026-12-01T10:00:02.123Z']);
  });

  it('records the steps that started and ended while berthd was away when it starts again, replacing what recovery guessed', async () => {
    const n = node();
    await n.jobs.prologue(prologueInput());
    n.leave('42.0', formatSpooledStep({ jobId: '42', stepId: '0', argv: ['a'], startMs: T0 }));
    n.spool.drain();
    // berthd stops; step 0 ends and step 1 runs and ends meanwhile; berthd starts again
    n.leave('42.0', formatSpooledStep({ jobId: '42', stepId: '0', argv: ['a'], startMs: T0, end: { atMs: T0 + 10, waitStatus: 0 } }));
    n.leave('42.batch', formatSpooledStep({ jobId: '42', stepId: 'batch', argv: ['b'], startMs: T0 + 20, end: { atMs: T0 + 30, waitStatus: 15 } }));
    const after = n.build(new JobTable(n.h.config.stateDir));
    await after.jobs.recover();
    assert.equal(after.spool.drain(), 2);
    const steps = after.jobs.get('42')!.steps.map((s) => [s.stepId, s.state, s.exitCode, s.signal, s.endTime, s.cutByRestart ?? false]);
    assert.deepEqual(steps, [
      ['0', 'EXITED', 0, '', '2026-12-01T10:00:00.133Z', false],
      ['batch', 'KILLED', 143, 'SIGTERM', '2026-12-01T10:00:00.153Z', false],
    ]);
    assert.equal(readFileSync(path.join(n.spoolDir, '..', 'tasks', '42.job'), 'utf8').includes('pid='), true, 'the job file is still there');
  });

  it('follows the directory: a record renamed into it is read without being asked', async () => {
    const n = node();
    await n.jobs.prologue(prologueInput());
    n.spool.watch();
    try {
      n.leave('42.5', formatSpooledStep({ jobId: '42', stepId: '5', argv: ['x'], startMs: T0, end: { atMs: T0 + 1, waitStatus: 0 } }));
      for (let i = 0; i < 200 && !n.h.table.get('42')!.steps.some((s) => s.state === 'EXITED'); i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(n.h.table.get('42')!.steps.map((s) => [s.stepId, s.state]), [['5', 'EXITED']]);
    } finally {
      n.spool.close();
    }
  });

  it('reads the records of an ending job before accounting for it, and drops those of a job it does not hold', async () => {
    const n = node();
    await n.jobs.prologue(prologueInput());
    n.leave('42.2', formatSpooledStep({ jobId: '42', stepId: '2', argv: ['x'], startMs: T0, end: { atMs: T0 + 1, waitStatus: 0 } }));
    const late = n.leave('77.0', formatSpooledStep({ jobId: '77', stepId: '0', argv: ['x'], startMs: T0 }));
    await n.jobs.epilogue('42');
    assert.deepEqual(n.h.accounting().filter((r) => r.RecordType === 'step').map((r) => r.StepID), ['2']);
    n.spool.drain();
    assert.ok(!existsSync(late), 'a job berthd does not hold has been accounted for');
  });

  it('leaves alone, with a warning, what is not a regular file of root\'s that only root may write; removes a malformed record; never throws', async () => {
    const n = node();
    await n.jobs.prologue(prologueInput());
    const text = formatSpooledStep({ jobId: '42', stepId: '0', argv: ['x'], startMs: T0 });
    const open = n.leave('42.0', text, 0o666);
    const other = n.leave('42.1', text.replace('step=0', 'step=1'));
    chownSync(other, 2001, 2001);
    writeFileSync(path.join(n.h.dir, 'elsewhere'), text.replace('step=0', 'step=2'));
    symlinkSync(path.join(n.h.dir, 'elsewhere'), path.join(n.spoolDir, '42.2'));
    const bad = n.leave('42.3', 'job=42\nstep=3\n');
    n.leave('notes.txt', 'hello');
    assert.equal(n.spool.drain(), 0);
    assert.deepEqual(n.h.table.get('42')!.steps, []);
    assert.ok(existsSync(open) && existsSync(other), 'left alone');
    assert.ok(!existsSync(bad), 'a malformed one goes');
    await new Promise((r) => setImmediate(r));
    const warnings = n.lines.filter((l) => l.level === 'warn').map((l) => `${String(l.message)} ${String(l.error ?? '')}`);
    assert.equal(warnings.filter((w) => /not a regular file of root's/.test(w)).length, 2, warnings.join('\n'));
    assert.ok(warnings.some((w) => /symbolic link/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /malformed/.test(w) && /start_ms/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /not named JOB.STEP/.test(w)), warnings.join('\n'));
  });
});

describe("the job's container published for its steps (JOB.job)", () => {
  it('is written when the job container starts, with what the steps need, and goes when the job ends', async () => {
    const n = node();
    n.h.engine.existingPaths.add('/w');
    const job = (await n.jobs.prologue(prologueInput({ options: { mounts: [], workdir: '/w', envNames: ['KEEP'], name: '' } }))).job;
    const file = path.join(n.files.dir, '42.job');
    const text = readFileSync(file, 'utf8');
    assert.match(text, new RegExp(`^pid=${process.pid}$`, 'm'));
    assert.match(text, /^start=[1-9]\d*$/m);
    assert.match(text, /^uid=2001$/m);
    assert.match(text, new RegExp(`^digest=${job.imageDigest.replace(/[.]/g, '\\.')}$`, 'm'));
    assert.ok(job.imageDigest.endsWith(DIGEST));
    assert.match(text, /^workdir=\/w$/m);
    assert.match(text, new RegExp(`^container=${job.containerName}$`, 'm'));
    await n.jobs.epilogue('42');
    assert.ok(!existsSync(file));
  });

  it("is written again by a step prologue that asked berthd for the job's container (the file was missing or stale)", async () => {
    const n = node();
    await n.jobs.prologue(prologueInput());
    const file = path.join(n.files.dir, '42.job');
    n.files.removeJobFile('42');
    await n.steps.prologue({ jobId: '42', stepId: '0', uid: 2001, gid: 2001, user: 'alice', image: '', argv: ['true'] });
    assert.match(readFileSync(file, 'utf8'), /^uid=2001$/m);
    n.files.removeJobFile('42');
    await n.steps.prologue({ jobId: '42', stepId: '1', uid: 2001, gid: 2001, user: 'alice', image: '127.0.0.1:5000/berth/tools:1', argv: ['true'] }).catch(() => undefined);
    assert.ok(!existsSync(file), 'not by a step of another image');
  });

  it('is written again at recovery for a running job, and not for one whose container is gone', async () => {
    const n = node();
    await n.jobs.prologue(prologueInput());
    await n.jobs.prologue(prologueInput({ jobId: '43' }));
    const file = (id: string) => path.join(n.files.dir, `${id}.job`);
    n.files.removeJobFile('42');
    await n.h.engine.remove(n.h.table.get('43')!.containerId);
    const after = n.build(new JobTable(n.h.config.stateDir));
    await after.jobs.recover();
    for (const j of after.jobs.list()) await after.steps.publishJob(j.jobId);
    assert.ok(existsSync(file('42')), 'written again');
    assert.ok(!existsSync(file('43')), 'its container is gone');
  });
});
