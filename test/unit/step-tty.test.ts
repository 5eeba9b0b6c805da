import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StepRunner } from '../../services/agent/steps/step-runner';
import { Resizer, type TerminalSize, terminalSize } from '../../services/agent/steps/terminal-size';
import { harness, prologueInput } from './fakes/helpers';

describe('terminal sizes', () => {
  it('takes whole numbers from 1 to 65535 on both sides and nothing else', () => {
    assert.deepEqual(terminalSize(40, 100), { rows: 40, cols: 100 });
    assert.deepEqual(terminalSize(65535, 1), { rows: 65535, cols: 1 });
    for (const [r, c] of [[0, 80], [24, 0], [65536, 80], [24.5, 80], [Number.NaN, 80], [-1, 80]] as [number, number][]) {
      assert.equal(terminalSize(r, c), undefined, `${r}x${c}`);
    }
  });

  it('applies sizes in order, one call at a time, keeping only the newest while one is in flight', async () => {
    const applied: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const gates: (() => void)[] = [];
    const r = new Resizer(async (s) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((res) => gates.push(res));
      applied.push(`${s.rows}x${s.cols}`);
      inFlight--;
    }, () => assert.fail('no error expected'));
    r.request({ rows: 10, cols: 10 });
    await new Promise((res) => setImmediate(res));
    // a burst while the first call is in flight: only the last is sent
    r.request({ rows: 11, cols: 11 });
    r.request({ rows: 12, cols: 12 });
    r.request({ rows: 13, cols: 13 });
    for (let i = 0; i < 20; i++) {
      await new Promise((res) => setImmediate(res));
      gates.shift()?.();
    }
    await r.idle();
    assert.deepEqual(applied, ['10x10', '13x13']);
    assert.equal(maxInFlight, 1);
  });

  it('does not send the size it last applied again, and goes on after a failed call', async () => {
    const applied: TerminalSize[] = [];
    const errors: string[] = [];
    let failNext = false;
    const r = new Resizer(async (s) => {
      if (failNext) {
        failNext = false;
        throw new Error('engine said no');
      }
      applied.push(s);
    }, (err, s) => errors.push(`${s.rows}x${s.cols}: ${(err as Error).message}`));
    r.request({ rows: 40, cols: 100 });
    await r.idle();
    r.request({ rows: 40, cols: 100 });
    await r.idle();
    failNext = true;
    r.request({ rows: 50, cols: 120 });
    await r.idle();
    r.request({ rows: 50, cols: 120 });
    await r.idle();
    assert.deepEqual(applied, [{ rows: 40, cols: 100 }, { rows: 50, cols: 120 }]);
    assert.deepEqual(errors, ['50x120: engine said no']);
  });

  it('is idle at once when nothing was asked, and after a request that needed no call', async () => {
    let calls = 0;
    const r = new Resizer(async () => void calls++, () => undefined);
    await r.idle();
    r.request({ rows: 5, cols: 5 });
    await r.idle();
    r.request({ rows: 5, cols: 5 });
    await r.idle();
    r.request({ rows: 6, cols: 5 });
    await r.idle();
    assert.equal(calls, 2);
  });
});

describe('tty steps', () => {
  async function startTty(req: { tty: boolean; size?: TerminalSize }) {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const runner = new StepRunner(h.engine, h.ledger, h.log, [], () => undefined);
    const out: string[] = [];
    const err: string[] = [];
    const { step } = await runner.start(job, { stepId: '0', taskId: 0, argv: ['sh'], cwd: '/', env: ['TERM=xterm-256color', 'BERTH_TTY_SIZE=1x1'], ...req },
      { name: 'alice', home: '/home/alice' }, { stdout: (b) => out.push(b.toString()), stderr: (b) => err.push(b.toString()) });
    return { h, step, out, err, exec: h.engine.execs[0]! };
  }

  it('asks for a terminal of the client\'s size: set by berth-init before the command runs, and by the engine', async () => {
    const { step, exec } = await startTty({ tty: true, size: { rows: 40, cols: 100 } });
    assert.equal(exec.opts.tty, true);
    assert.deepEqual(exec.opts.consoleSize, { rows: 40, cols: 100 });
    assert.deepEqual(exec.opts.env.filter((e) => e.startsWith('BERTH_TTY_SIZE=')), ['BERTH_TTY_SIZE=40x100'], 'the client cannot set it, berthd does');
    assert.ok(exec.opts.env.includes('TERM=xterm-256color'));
    await step.resized();
    assert.deepEqual(exec.resizes, [[40, 100]]);
  });

  it('follows the client\'s window and ignores a repeat of the current size', async () => {
    const { step, exec } = await startTty({ tty: true, size: { rows: 40, cols: 100 } });
    step.resize(40, 100);
    step.resize(50, 132);
    await step.resized();
    step.resize(50, 132);
    await step.resized();
    assert.deepEqual(exec.resizes, [[40, 100], [50, 132]]);
  });

  it('refuses a size no terminal has, and keeps going after the engine failed a resize', async () => {
    const { step, exec } = await startTty({ tty: true });
    assert.throws(() => step.resize(0, 80), /window size 0x80 is not one a terminal can have/);
    exec.resizeError = new Error('boom');
    step.resize(30, 90);
    await step.resized();
    step.resize(31, 91);
    await step.resized();
    assert.deepEqual(exec.resizes, [[31, 91]]);
  });

  it('passes the terminal\'s output through as one stream, without demultiplexing', async () => {
    const { step, out, err, exec } = await startTty({ tty: true });
    exec.stream.write(Buffer.from('\x01\x00\x00\x00prompt$ '));
    exec.exitCode = 0;
    exec.stream.end();
    assert.deepEqual(await step.done, { state: 'EXITED', exitCode: 0, signal: '' });
    assert.equal(out.join(''), '\x01\x00\x00\x00prompt$ ');
    assert.deepEqual(err, []);
  });

  it('without a terminal: no size is set and resizes are ignored', async () => {
    const { step, exec } = await startTty({ tty: false, size: { rows: 40, cols: 100 } });
    assert.equal(exec.opts.consoleSize, undefined);
    assert.ok(!exec.opts.env.some((e) => e.startsWith('BERTH_TTY_SIZE=')));
    step.resize(50, 132);
    await step.resized();
    assert.deepEqual(exec.resizes, []);
  });

  it('does not resize a step that has ended', async () => {
    const { step, exec } = await startTty({ tty: true });
    exec.exitCode = 0;
    exec.stream.end();
    await step.done;
    step.resize(50, 132);
    await step.resized();
    assert.deepEqual(exec.resizes, []);
  });
});
