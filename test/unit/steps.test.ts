import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Demuxer } from '../../services/agent/steps/demux';
import { checkSignal } from '../../services/agent/steps/signals';
import { forwardedEnv, stepEnv } from '../../services/agent/steps/step-env';
import { StepRunner } from '../../services/agent/steps/step-runner';
import { BerthError } from '../../services/shared/errors';
import { harness, prologueInput } from './fakes/helpers';

function frame(type: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const head = Buffer.alloc(8);
  head[0] = type;
  head.writeUInt32BE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

describe('step output demultiplexing', () => {
  it('splits frames across arbitrary chunk boundaries', () => {
    const out: string[] = [];
    const err: string[] = [];
    const d = new Demuxer((b) => out.push(b.toString()), (b) => err.push(b.toString()));
    const all = Buffer.concat([frame(1, 'hello '), frame(2, 'oops'), frame(1, 'world')]);
    for (let i = 0; i < all.length; i += 5) d.push(all.subarray(i, i + 5));
    assert.equal(out.join(''), 'hello world');
    assert.equal(err.join(''), 'oops');
  });
});

describe('step environment', () => {
  it('forwards Slurm, PMI, PMIx and Open MPI variables and nothing else', () => {
    const env = ['SLURM_PROCID=3', 'PMI_RANK=3', 'PMIX_RANK=3', 'OMPI_COMM_WORLD_RANK=3', 'PATH=/host/bin', 'LD_PRELOAD=/evil.so', 'HOME=/x', 'UCX_TLS=rc', 'bad-name=1', 'noequals'];
    assert.deepEqual(forwardedEnv(env), ['SLURM_PROCID=3', 'PMI_RANK=3', 'PMIX_RANK=3', 'OMPI_COMM_WORLD_RANK=3', 'UCX_TLS=rc']);
    assert.deepEqual(stepEnv(['SLURM_JOB_ID=1'], { name: 'alice', home: '/home/alice' }), ['SLURM_JOB_ID=1', 'USER=alice', 'LOGNAME=alice', 'HOME=/home/alice']);
  });

  it("keeps the host's locale out unless the job names it (--container-env), as pyxis does", () => {
    const env = ['LANG=de_DE.UTF-8', 'LANGUAGE=de', 'LC_ALL=de_DE.UTF-8', 'TZ=Europe/Berlin', 'TERM=xterm'];
    assert.deepEqual(forwardedEnv(env), ['TZ=Europe/Berlin', 'TERM=xterm']);
    assert.deepEqual(forwardedEnv(env, ['LANG']), ['LANG=de_DE.UTF-8', 'TZ=Europe/Berlin', 'TERM=xterm']);
  });

  it('accepts signal names with or without SIG and refuses others', () => {
    assert.equal(checkSignal('term'), 'SIGTERM');
    assert.equal(checkSignal('SIGINT'), 'SIGINT');
    assert.throws(() => checkSignal('SIGSEGV'), /cannot be sent to a step/);
    assert.throws(() => checkSignal('NOPE'), /cannot be sent/);
  });
});

describe('step runner', () => {
  async function started() {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const signals: [number, string][] = [];
    const runner = new StepRunner(h.engine, h.ledger, h.log, [], (pid, sig) => void signals.push([pid, sig]));
    const out: string[] = [];
    const { step } = await runner.start(job, { stepId: '0', taskId: 5, argv: ['hostname'], cwd: '/home/alice/run', env: ['SLURM_PROCID=5', 'PATH=/x'], tty: false },
      { name: 'alice', home: '/home/alice' }, { stdout: (b) => out.push(b.toString()), stderr: () => undefined });
    return { h, job, step, signals, out, exec: h.engine.execs[0]! };
  }

  it('wraps the command in berth-init as the job user, in the cwd, with the filtered env', async () => {
    const { exec } = await started();
    assert.deepEqual(exec.opts.cmd, ['/.berth/init', 'exec', '--', 'hostname']);
    assert.equal(exec.opts.user, '2001:2001');
    assert.equal(exec.opts.workingDir, '/home/alice/run');
    assert.ok(exec.opts.env.includes('SLURM_PROCID=5'));
    assert.ok(!exec.opts.env.some((e) => e.startsWith('PATH=')));
  });

  it('streams output and records the exit status of the step', async () => {
    const { h, step, out, exec } = await started();
    exec.stream.write(frame(1, 'n1\n'));
    exec.exitCode = 7;
    exec.stream.end();
    const outcome = await step.done;
    assert.deepEqual(outcome, { state: 'EXITED', exitCode: 7, signal: '' });
    assert.equal(out.join(''), 'n1\n');
    await new Promise((r) => setImmediate(r));
    const rec = h.jobs.get('42')!.steps[0]!;
    assert.equal(rec.state, 'EXITED');
    assert.equal(rec.exitCode, 7);
    assert.equal(rec.taskId, 5);
  });

  it("kills the step's whole process group when the client goes away", async () => {
    const { step, signals, exec } = await started();
    await new Promise((r) => setTimeout(r, 20));
    step.abort(30);
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(signals, [[-4242, 'SIGTERM'], [-4242, 'SIGKILL']]);
    exec.exitCode = 137;
    exec.stream.end();
    assert.deepEqual(await step.done, { state: 'KILLED', exitCode: 137, signal: 'SIGKILL' });
  });

  it("refuses a directory that the container lacks, and accepts the work dir, site mounts and the image's own", async () => {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const runner = new StepRunner(h.engine, h.ledger, h.log, ['/scratch'], () => undefined);
    const start = (cwd: string) => runner.start(job, { stepId: '0', taskId: 0, argv: ['true'], cwd, env: [], tty: false },
      { name: 'alice', home: '/' }, { stdout: () => undefined, stderr: () => undefined });
    await assert.rejects(start('/work/main'), /the current directory \/work\/main does not exist in the container of job 42: cd into the job's working directory \(\/home\/alice\/run\)/);
    assert.equal(h.engine.execs.length, 0);
    await start('/home/alice/run/sub');
    await start('/scratch/x');
    await start('/tmp');
    assert.equal(h.engine.execs.length, 3);
  });

  it('refuses a job whose container is not running', async () => {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const runner = new StepRunner(h.engine, h.ledger, h.log, ['/scratch'], () => undefined);
    await assert.rejects(runner.start({ ...job, state: 'UNKNOWN' }, { stepId: '0', taskId: 0, argv: ['true'], cwd: '/', env: [], tty: false },
      { name: 'alice', home: '/' }, { stdout: () => undefined, stderr: () => undefined }), (e: unknown) => e instanceof BerthError && e.code === 'JOB_NOT_RUNNING');
  });
});
