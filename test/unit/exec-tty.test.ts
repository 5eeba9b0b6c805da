// The client's terminal handling: the choice of a tty, the window size, raw mode and its
// restore on every way out, and what `berth exec` sends berthd (a fake ExecStep on a socket).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { agentTarget } from '../../services/cli/agent-client';
import { EXIT_BERTH_ERROR, runExec } from '../../services/cli/exec';
import { parseExecArgs, RawTerminal, wantTty, windowSize } from '../../services/cli/terminal';
import type { ExecStepRequest__Output } from '../../services/shared/gen/berth/v1/ExecStepRequest';
import type { ExecStepResponse } from '../../services/shared/gen/berth/v1/ExecStepResponse';
import { SERVICE_NAME } from '../../services/shared/proto-names';
import { serviceDefinition } from '../../services/shared/service-definition';

/** a terminal's input side as Node's tty.ReadStream shows it, recording raw mode changes */
class FakeTtyIn extends PassThrough {
  isTTY = true;
  isRaw = false;
  readonly modes: boolean[] = [];
  constructor(private readonly events: string[] = [], private readonly failRestore = false) {
    super();
  }
  setRawMode(raw: boolean): this {
    if (!raw && this.failRestore) throw new Error('EIO: the terminal hung up');
    this.modes.push(raw);
    this.events.push(`raw:${raw}`);
    this.isRaw = raw;
    return this;
  }
}

class FakeTtyOut extends Writable {
  isTTY = true;
  text = '';
  constructor(public rows: number, public columns: number) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

class FakeHooks extends EventEmitter {}

describe('berth exec command line', () => {
  it('reads --tty, -t and --no-tty before the command, the last one winning, and an optional --', () => {
    assert.deepEqual(parseExecArgs(['--', 'sh']), { command: ['sh'], tty: undefined });
    assert.deepEqual(parseExecArgs(['sh', '-c', 'exit 3']), { command: ['sh', '-c', 'exit 3'], tty: undefined });
    assert.deepEqual(parseExecArgs(['--tty', '--', 'bash']), { command: ['bash'], tty: true });
    assert.deepEqual(parseExecArgs(['-t', 'bash']), { command: ['bash'], tty: true });
    assert.deepEqual(parseExecArgs(['--tty', '--no-tty', '--', 'bash']), { command: ['bash'], tty: false });
    assert.deepEqual(parseExecArgs(['--', '--tty']), { command: ['--tty'], tty: undefined }, 'after -- everything is the command');
    assert.deepEqual(parseExecArgs(['ls', '-t']), { command: ['ls', '-t'], tty: undefined }, "the command's own options stay its own");
  });

  it('gives a terminal when stdin and stdout are terminals, unless told otherwise', () => {
    const t = { isTTY: true };
    const f = { isTTY: false };
    assert.equal(wantTty(undefined, t, t), true);
    assert.equal(wantTty(undefined, t, f), false);
    assert.equal(wantTty(undefined, f, t), false, 'srun --pty: tasks other than 0 have no terminal on stdin');
    assert.equal(wantTty(false, t, t), false);
    assert.equal(wantTty(true, f, f), true);
  });

  it("takes the window size from stdout when it is a terminal that knows it", () => {
    assert.deepEqual(windowSize({ isTTY: true, rows: 40, columns: 100 }), { rows: 40, cols: 100 });
    assert.equal(windowSize({ isTTY: false, rows: 40, columns: 100 }), undefined);
    assert.equal(windowSize({ isTTY: true, rows: 0, columns: 0 }), undefined, 'a pty nobody sized reports 0x0');
    assert.equal(windowSize({ isTTY: true }), undefined);
  });
});

describe('raw terminal', () => {
  it('enters raw mode once, output post-processing off too, restores the mode it found, and unhooks from exit', () => {
    const input = new FakeTtyIn();
    const hooks = new FakeHooks();
    const opostOff: unknown[] = [];
    const raw = new RawTerminal(input, hooks, (i) => opostOff.push(i));
    assert.equal(raw.enter(), true);
    assert.equal(raw.enter(), true);
    assert.equal(input.isRaw, true);
    assert.deepEqual(opostOff, [input]);
    assert.equal(hooks.listenerCount('exit'), 1);
    raw.restore();
    raw.restore();
    assert.deepEqual(input.modes, [true, false]);
    assert.equal(hooks.listenerCount('exit'), 0);
  });

  it('restores the terminal when the process exits without having restored it (an uncaught error)', () => {
    const input = new FakeTtyIn();
    const hooks = new FakeHooks();
    new RawTerminal(input, hooks).enter();
    hooks.emit('exit');
    assert.equal(input.isRaw, false);
    assert.deepEqual(input.modes, [true, false]);
  });

  it('leaves a terminal that was raw already raw', () => {
    const input = new FakeTtyIn();
    input.isRaw = true;
    const opostOff: unknown[] = [];
    const raw = new RawTerminal(input, new FakeHooks(), (i) => opostOff.push(i));
    raw.enter();
    raw.restore();
    assert.deepEqual(input.modes, [true, true]);
    assert.deepEqual(opostOff, [], 'whoever made it raw chose its output settings');
  });

  it('does nothing to an input that is not a terminal, and survives a terminal that hung up', () => {
    const notTty = new FakeTtyIn();
    notTty.isTTY = false;
    assert.equal(new RawTerminal(notTty, new FakeHooks()).enter(), false);
    assert.deepEqual(notTty.modes, []);
    const hungUp = new FakeTtyIn([], true);
    const hooks = new FakeHooks();
    const raw = new RawTerminal(hungUp, hooks);
    raw.enter();
    assert.doesNotThrow(() => raw.restore());
    assert.equal(hooks.listenerCount('exit'), 0);
  });
});

type Script = (call: grpc.ServerDuplexStream<ExecStepRequest__Output, ExecStepResponse>, got: ExecStepRequest__Output[]) => void;

describe('berth exec with a terminal, against a fake berthd', () => {
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'berth-exec-tty-'));
  const env = { SLURM_JOB_ID: '77', SLURMD_NODENAME: 'ttyfake', SLURM_STEP_ID: '0', SLURM_PROCID: '0', BERTH_RUN_DIR: runDir, TERM: 'xterm' };
  const server = new grpc.Server();
  let script: Script = () => undefined;
  let received: ExecStepRequest__Output[] = [];

  before(async () => {
    server.addService(serviceDefinition(SERVICE_NAME), {
      ExecStep: (call: grpc.ServerDuplexStream<ExecStepRequest__Output, ExecStepResponse>) => {
        const got: ExecStepRequest__Output[] = [];
        received = got;
        call.on('data', (m: ExecStepRequest__Output) => {
          got.push(m);
          script(call, got);
        });
        call.on('end', () => call.end());
      },
    } as unknown as grpc.UntypedServiceImplementation);
    const socket = agentTarget('ttyfake', env).socket;
    await import('node:fs').then((fs) => fs.mkdirSync(path.dirname(socket), { recursive: true }));
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  });
  after(() => server.forceShutdown());

  const io = (events: string[] = []) => {
    const stdin = new FakeTtyIn(events);
    const stdout = new FakeTtyOut(40, 100);
    let errText = '';
    const stderr = new Writable({ write(c: Buffer, _e, cb) { events.push(`stderr:${c.toString().trim()}`); errText += c.toString(); cb(); } });
    return { stdin, stdout, stderr, errText: () => errText };
  };

  it('starts a tty step of the window size, raw while attached, follows a resize, passes keys through and returns the exit status', async () => {
    const t = io();
    script = (call, got) => {
      const m = got[got.length - 1]!;
      if (m.msg === 'start') {
        call.write({ started: { execId: 'e1' } });
        call.write({ stdout: Buffer.from('$ ') });
        // the window changes while the step runs
        setImmediate(() => {
          t.stdout.rows = 50;
          t.stdout.columns = 132;
          t.stdout.emit('resize');
          t.stdin.write(Buffer.from([0x03]));
        });
      }
      if (m.msg === 'stdin' && m.stdin?.[0] === 0x03) call.write({ exit: { exitCode: 3, signal: '' } });
    };
    const hooks = new FakeHooks();
    const code = await runExec(['sh'], env, t, { exitHooks: hooks });
    assert.equal(code, 3);
    const start = received.find((m) => m.msg === 'start')!.start!;
    assert.equal(start.tty, true);
    assert.deepEqual([start.rows, start.cols], [40, 100]);
    const resize = received.find((m) => m.msg === 'resize')?.resize;
    assert.deepEqual(resize && [resize.rows, resize.cols], [50, 132]);
    assert.ok(received.some((m) => m.msg === 'stdin' && m.stdin?.equals(Buffer.from([0x03]))), 'Ctrl-C goes to the step as a byte');
    assert.equal(t.stdout.text, '$ ');
    assert.deepEqual(t.stdin.modes, [true, false]);
    assert.equal(hooks.listenerCount('exit'), 0);
    assert.equal(t.stdout.listenerCount('resize'), 0);
  });

  it('restores the terminal before it reports berthd failing the step', async () => {
    const events: string[] = [];
    const t = io(events);
    script = (call, got) => {
      if (got[got.length - 1]!.msg !== 'start') return;
      call.write({ started: { execId: 'e2' } });
      setImmediate(() => call.emit('error', { code: grpc.status.INTERNAL, details: 'engine exploded', metadata: new grpc.Metadata() }));
    };
    const code = await runExec(['sh'], env, t, { exitHooks: new FakeHooks() });
    assert.equal(code, EXIT_BERTH_ERROR);
    assert.match(t.errText(), /^berth exec: .*engine exploded/);
    assert.deepEqual(events, ['raw:true', 'raw:false', events[2]]);
    assert.match(events[2]!, /^stderr:berth exec: /);
  });

  it('without a terminal on stdin: no tty, no raw mode, no size', async () => {
    const t = io();
    t.stdin.isTTY = false;
    script = (call, got) => {
      if (got[got.length - 1]!.msg === 'start') {
        call.write({ started: { execId: 'e3' } });
        call.write({ exit: { exitCode: 0, signal: '' } });
      }
    };
    assert.equal(await runExec(['true'], env, t, { exitHooks: new FakeHooks() }), 0);
    const start = received.find((m) => m.msg === 'start')!.start!;
    assert.equal(start.tty, false);
    assert.deepEqual([start.rows, start.cols], [0, 0]);
    assert.deepEqual(t.stdin.modes, []);
  });

  it('--tty gives a terminal even when stdin is not one, without touching stdin; --no-tty none on a terminal', async () => {
    script = (call, got) => {
      if (got[got.length - 1]!.msg === 'start') {
        call.write({ started: { execId: 'e4' } });
        call.write({ exit: { exitCode: 0, signal: '' } });
      }
    };
    const forced = io();
    forced.stdin.isTTY = false;
    await runExec(['true'], env, forced, { tty: true, exitHooks: new FakeHooks() });
    const s1 = received.find((m) => m.msg === 'start')!.start!;
    assert.equal(s1.tty, true);
    assert.deepEqual([s1.rows, s1.cols], [40, 100]);
    assert.deepEqual(forced.stdin.modes, []);
    const refused = io();
    await runExec(['true'], env, refused, { tty: false, exitHooks: new FakeHooks() });
    assert.equal(received.find((m) => m.msg === 'start')!.start!.tty, false);
    assert.deepEqual(refused.stdin.modes, []);
  });
});
