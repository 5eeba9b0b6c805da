// berth-exec (scripts/native/berth-exec.c), the native `berth exec`, against a gRPC server of
// the real service definition on a unix socket: its first ExecStep request decodes to what the
// Node client (services/cli/exec.ts runExec) sends from the same variables and arguments, it
// says what the Node client says when it refuses, relays stdin up to EOF, stdout and stderr,
// forwards signals, exits with the step's status, and hands what it does not handle itself to
// `node berth.js exec ...` (a recording stand-in for berth.js here).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../../services/shared/service-definition';
import { SERVICE_NAME, MUNGE_METADATA_KEY } from '../../services/shared/proto-names';
import { runExec } from '../../services/cli/exec';
import type { ExecStepRequest__Output } from '../../services/shared/gen/berth/v1/ExecStepRequest';
import type { ExecStepResponse } from '../../services/shared/gen/berth/v1/ExecStepResponse';

const REPO = path.resolve(import.meta.dirname, '../..');
const NATIVE = path.join(REPO, 'scripts/native');
const root = process.getuid?.() === 0;

type Duplex = grpc.ServerDuplexStream<ExecStepRequest__Output, ExecStepResponse>;
/** what the fake berthd does with each message of a call (got: the messages so far) */
type Script = (call: Duplex, got: ExecStepRequest__Output[], m: ExecStepRequest__Output) => void;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

describe('berth-exec, the native berth exec', { skip: !root && 'the fake berthd listens where root connects (admin.sock); run as root' }, () => {
  let dir: string;
  let bin: string;
  let fakeJs: string;
  let handedOver: string;
  const server = new grpc.Server();
  let script: Script = () => undefined;
  const calls: { got: ExecStepRequest__Output[]; munge: string | undefined }[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'berth-exec-'));
    chmodSync(dir, 0o755);
    bin = path.join(dir, 'berth-exec');
    // as scripts/build-native.sh builds it
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', bin,
      ...['berth-exec.c', 'berth_grpc.c', 'berth_pb.c', 'berth_utf8.c'].map((f) => path.join(NATIVE, f)), '-lnghttp2', '-lmunge'], { stdio: ['ignore', 'ignore', 'inherit'] });
    // a stand-in for berth.js: records the arguments it was handed and exits 42
    handedOver = path.join(dir, 'handed-over.json');
    fakeJs = path.join(dir, 'fake-berth.cjs');
    writeFileSync(fakeJs, `require('fs').writeFileSync(${JSON.stringify(handedOver)}, JSON.stringify(process.argv.slice(2))); process.exit(42);\n`);
    server.addService(serviceDefinition(SERVICE_NAME), {
      ExecStep: (call: Duplex) => {
        const got: ExecStepRequest__Output[] = [];
        calls.push({ got, munge: call.metadata.get(MUNGE_METADATA_KEY)[0]?.toString() });
        call.on('data', (m: ExecStepRequest__Output) => {
          got.push(m);
          script(call, got, m);
        });
        call.on('error', () => undefined);
        call.on('end', () => undefined);
      },
    } as unknown as grpc.UntypedServiceImplementation);
    const nodeDir = path.join(dir, 'run', 'n9');
    mkdirSync(nodeDir, { recursive: true });
    chmodSync(path.join(dir, 'run'), 0o755);
    chmodSync(nodeDir, 0o755);
    for (const sock of ['admin.sock', 'user.sock']) {
      await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${path.join(nodeDir, sock)}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
    }
    chmodSync(path.join(nodeDir, 'user.sock'), 0o777);
  });

  after(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const baseEnv = (): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin', SLURM_JOB_ID: '5', SLURM_STEP_ID: '0', SLURM_PROCID: '0',
    SLURMD_NODENAME: 'n9', BERTH_RUN_DIR: path.join(dir, 'run'), HOME: '/root', LANG: 'C.UTF-8',
  });

  /** the native client, with stdin from INPUT (then EOF); onSpawn sees the child */
  function native(args: string[], env: Record<string, string>, input: string | Buffer = '', onSpawn?: (pid: number) => void, user?: string): Promise<Run> {
    return new Promise((resolve, reject) => {
      const argv = [`--node=${process.execPath}`, `--berth-js=${fakeJs}`, 'exec', ...args];
      const c = user
        ? spawn('runuser', ['-u', user, '--', 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), bin, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], cwd: dir })
        : spawn(bin, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
      c.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
      c.stdin.on('error', () => undefined);
      c.stdin.end(input);
      c.once('error', reject);
      c.once('spawn', () => onSpawn?.(c.pid!));
      c.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  /** the Node client in this process, as `berth exec` runs it, with stdin from INPUT */
  async function reference(command: string[], env: Record<string, string>, input = '', tty?: boolean): Promise<Run> {
    const stdin = new PassThrough();
    stdin.end(input);
    let stdout = '';
    let stderr = '';
    const out = new Writable({ write(c: Buffer, _e, cb) { stdout += c.toString(); cb(); } });
    const err = new Writable({ write(c: Buffer, _e, cb) { stderr += c.toString(); cb(); } });
    const code = await runExec(command, env, { stdin, stdout: out, stderr: err }, { tty });
    return { code, signal: null, stdout, stderr };
  }

  const answer: Script = (call, _got, m) => {
    if (m.msg === 'start') {
      call.write({ started: { execId: 'e1', warnings: ['berth: job 5 runs without its working directory'] } });
      call.write({ stdout: Buffer.from('out\n') });
      call.write({ stderr: Buffer.from('err\n') });
      call.write({ exit: { exitCode: 0, signal: '' } });
      call.end();
    }
  };

  it('sends the first ExecStep request as exec.ts sends it for the same variables and arguments', async () => {
    script = answer;
    const env = { ...baseEnv(), SLURM_STEP_ID: '12', SLURM_PROCID: '3', PMIX_RANK: '3', OMPI_X: 'a b=c', UNI: 'grüße ✓' };
    for (const [args, command, tty] of [
      [['--', 'sh', '-c', 'echo "$1"', 'x', 'a b ✓'], ['sh', '-c', 'echo "$1"', 'x', 'a b ✓'], undefined],
      [['--no-tty', 'true'], ['true'], false],
      [['--tty', '--', 'ls', '-t'], ['ls', '-t'], true],
      [['-t', '--no-tty', '--', '--tty'], ['--tty'], false],
    ] as [string[], string[], boolean | undefined][]) {
      calls.length = 0;
      const n = await native(args, env);
      assert.equal(n.code, 0, n.stderr);
      await reference(command, env, '', tty);
      assert.equal(calls.length, 2);
      const [mine, theirs] = calls.map((c) => c.got[0]!) as [ExecStepRequest__Output, ExecStepRequest__Output];
      assert.equal(mine.msg, 'start');
      assert.deepEqual(mine, theirs, `berth exec ${args.join(' ')}`);
      assert.deepEqual(mine.start!.argv, command);
      assert.equal(mine.start!.tty, tty === true, 'no terminal on a pipe unless --tty');
      assert.equal(mine.start!.taskId, 3);
      assert.equal(mine.start!.jobId, '5');
      assert.equal(mine.start!.cwd, process.cwd());
    }
  });

  it('prints the output and, for task 0 only, the warnings; stdout and stderr apart', async () => {
    script = answer;
    const task0 = await native(['--', 'true'], baseEnv());
    assert.deepEqual([task0.code, task0.stdout, task0.stderr], [0, 'out\n', 'berth: job 5 runs without its working directory\nerr\n']);
    const ref = await reference(['true'], baseEnv());
    assert.deepEqual([task0.stdout, task0.stderr], [ref.stdout, ref.stderr]);
    const task1 = await native(['--', 'true'], { ...baseEnv(), SLURM_PROCID: '1' });
    assert.deepEqual([task1.stdout, task1.stderr], ['out\n', 'err\n']);
  });

  it("exits with the step's status as exec.ts does (process.exit)", async () => {
    for (const [exitCode, want] of [[0, 0], [3, 3], [137, 137], [255, 255], [-1, 255], [256, 0]] as const) {
      script = (call, _g, m) => {
        if (m.msg === 'start') {
          call.write({ started: { execId: 'e1' } });
          call.write({ exit: { exitCode, signal: exitCode === 137 ? 'SIGKILL' : '' } });
          call.end();
        }
      };
      const r = await native(['--', 'sh', '-c', 'exit'], baseEnv());
      assert.equal(r.code, want, `exit code ${exitCode}: ${r.stderr}`);
    }
  });

  it('relays stdin from `started` on, in order, and closes it at EOF', async () => {
    const input = Buffer.alloc(600_000);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 9)) & 0xff;
    script = (call, got, m) => {
      if (m.msg === 'start') call.write({ started: { execId: 'e1' } });
      if (m.msg === 'stdinClose') {
        const sent = Buffer.concat(got.filter((g) => g.msg === 'stdin').map((g) => g.stdin!));
        call.write({ stdout: Buffer.from(`${sent.length} ${sent.equals(input) ? 'same' : 'different'}\n`) });
        call.write({ exit: { exitCode: 0, signal: '' } });
        call.end();
      }
    };
    const r = await native(['--', 'cat'], baseEnv(), input);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${input.length} same\n`);
    assert.equal(calls.at(-1)!.got.filter((g) => g.msg === 'stdinClose').length, 1, 'one stdin_close');
    const empty = await native(['--', 'cat'], baseEnv(), '');
    assert.equal(empty.stdout, '0 different\n', 'an empty stdin: stdin_close alone');
    assert.deepEqual(calls.at(-1)!.got.map((g) => g.msg), ['start', 'stdinClose']);
  });

  it('forwards the signals exec.ts forwards, by name, while the step runs', async () => {
    const sigs = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGCONT', 'SIGALRM'] as const;
    let pid = 0;
    script = (call, got, m) => {
      if (m.msg === 'start') {
        call.write({ started: { execId: 'e1' } });
        // once started, the test sends each signal in turn
        setTimeout(() => process.kill(pid, sigs[0]), 20);
      }
      if (m.msg === 'signal') {
        const seen = got.filter((g) => g.msg === 'signal').length;
        if (seen < sigs.length) setTimeout(() => process.kill(pid, sigs[seen]!), 5);
        else {
          call.write({ exit: { exitCode: 143, signal: 'SIGTERM' } });
          call.end();
        }
      }
    };
    const r = await native(['--', 'sleep', '100'], baseEnv(), '', (p) => { pid = p; });
    assert.equal(r.signal, null, 'the client itself is not killed by what it forwards');
    assert.equal(r.code, 143, r.stderr);
    assert.deepEqual(calls.at(-1)!.got.filter((g) => g.msg === 'signal').map((g) => g.signal), [...sigs]);
  });

  it("refuses what exec.ts refuses, in its words, exit 125", async () => {
    script = answer;
    const cases: [string, Record<string, string>, string[]][] = [
      ['no job', { ...baseEnv(), SLURM_JOB_ID: '' }, ['true']],
      ['a job id that is not one', { ...baseEnv(), SLURM_JOB_ID: '12x' }, ['true']],
      ['no command', baseEnv(), []],
      ['no node', { ...baseEnv(), SLURMD_NODENAME: '' }, ['true']],
    ];
    for (const [what, env, command] of cases) {
      const mine = await native(['--', ...command], env);
      const theirs = await reference(command, env);
      assert.equal(mine.code, 125, what);
      assert.equal(theirs.code, 125, what);
      assert.equal(mine.stderr, theirs.stderr, what);
      assert.match(mine.stderr, /^berth exec: /, what);
    }
    const noJob = { ...baseEnv() } as Record<string, string>;
    delete noJob.SLURM_JOB_ID;
    const r = await native(['--', 'true'], noJob);
    assert.equal(r.code, 125);
    assert.equal(r.stderr, (await reference(['true'], noJob)).stderr);
  });

  it("says berthd's refusal and a stream without an exit as exec.ts does, exit 125", async () => {
    script = (call, _g, m) => {
      if (m.msg === 'start') call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'job 5 is not yours: it belongs to uid 1000' });
    };
    const mine = await native(['--', 'true'], baseEnv());
    const theirs = await reference(['true'], baseEnv());
    assert.deepEqual([mine.code, mine.stderr], [125, theirs.stderr]);
    assert.equal(mine.stderr, 'berth exec: job 5 is not yours: it belongs to uid 1000\n');
    script = (call, _g, m) => {
      if (m.msg === 'start') {
        call.write({ started: { execId: 'e1' } });
        call.end();
      }
    };
    const noExit = await native(['--', 'true'], baseEnv());
    const noExitRef = await reference(['true'], baseEnv());
    assert.deepEqual([noExit.code, noExit.stderr], [125, noExitRef.stderr]);
    assert.equal(noExit.stderr, 'berth exec: berthd ended the step without an exit status\n');
  });

  it('hands --help, berthd not reachable and text Node would change to `node berth.js exec ...`', async () => {
    const cases: [string, string[], Record<string, string>][] = [
      ['--help', ['--help'], baseEnv()],
      ['-h', ['-h', 'x'], baseEnv()],
      ['berthd not reachable', ['--', 'true'], { ...baseEnv(), SLURMD_NODENAME: 'n8' }],
      ['a SLURM_PROCID Number() reads its own way', ['--', 'true'], { ...baseEnv(), SLURM_PROCID: ' 1' }],
      ['a run dir path.join rewrites', ['--', 'true'], { ...baseEnv(), BERTH_RUN_DIR: `${dir}/run/` }],
    ];
    for (const [what, args, env] of cases) {
      rmSync(handedOver, { force: true });
      const r = await native(args, env);
      assert.equal(r.code, 42, `${what}: ${r.stderr}`);
      assert.deepEqual(JSON.parse(readFileSync(handedOver, 'utf8')), ['exec', ...args], what);
    }
    // an argument that is not UTF-8 (Node would send U+FFFD for it)
    rmSync(handedOver, { force: true });
    const c = spawnSync('sh', ['-c', `exec "$0" --node="$1" --berth-js="$2" exec -- printf "$(printf '\\377')"`, bin, process.execPath, fakeJs], { env: baseEnv() });
    assert.equal(c.status, 42, c.stderr.toString());
  });

  it('with a terminal: its size at the start and on SIGWINCH, raw while attached, keys as bytes, the terminal put back', async () => {
    script = (call, _got, m) => {
      if (m.msg === 'start') {
        call.write({ started: { execId: 'e1' } });
        call.write({ stdout: Buffer.from('$ ') });
      }
      if (m.msg === 'resize') call.write({ stdout: Buffer.from(`size ${m.resize!.rows}x${m.resize!.cols}\r\n`) });
      if (m.msg === 'stdin' && m.stdin?.includes(0x03)) {
        call.write({ exit: { exitCode: 3, signal: '' } });
        call.end();
      }
    };
    calls.length = 0;
    const modes = path.join(dir, 'modes');
    const env = baseEnv();
    const shell = `stty -g > ${modes}.before; "$0" --node="$1" --berth-js="$2" exec -- sh; rc=$?; stty -g > ${modes}.after; exit $rc`;
    const spec = path.join(dir, 'pty.json');
    writeFileSync(spec, JSON.stringify({
      argv: ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'sh', '-c', shell, bin, process.execPath, fakeJs], rows: 40, cols: 100, timeout: 20,
      steps: [{ expect: '\\$ ' }, { resize: [50, 132] }, { expect: 'size 50x132' }, { send: 'echo hi\u0003' }],
    }));
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn('/usr/bin/python3', [path.join(REPO, 'test/support/pty-driver.py'), spec], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      c.stdout.on('data', (b: Buffer) => { text += b.toString(); });
      c.once('error', reject);
      c.once('close', () => resolve(text));
    });
    const r = JSON.parse(out) as { exit_code: number; failed: unknown; transcript: string };
    assert.equal(r.failed, null, r.transcript);
    assert.equal(r.exit_code, 3, r.transcript);
    const got = calls[0]!.got;
    const start = got[0]!.start!;
    assert.deepEqual([start.tty, start.rows, start.cols], [true, 40, 100]);
    assert.deepEqual(got.filter((g) => g.msg === 'resize').map((g) => [g.resize!.rows, g.resize!.cols]), [[50, 132]]);
    const typed = Buffer.concat(got.filter((g) => g.msg === 'stdin').map((g) => g.stdin!));
    assert.equal(typed.toString(), 'echo hi\u0003', 'raw: keys and Ctrl-C go to the step as bytes, not echoed or acted on here');
    assert.doesNotMatch(r.transcript, /echo hi/, 'nothing echoed by the client\'s terminal');
    assert.equal(readFileSync(`${modes}.after`, 'utf8'), readFileSync(`${modes}.before`, 'utf8'), 'the terminal is put back as it was');
  });

  it('as a user, sends a munge credential bound to ExecStep and the job on the user socket', { skip: spawnSync('munge', ['-n']).status !== 0 && 'munged is not running' }, async () => {
    script = answer;
    calls.length = 0;
    const r = await native(['--', 'true'], baseEnv(), '', undefined, 'nobody');
    assert.equal(r.code, 0, r.stderr);
    const cred = calls[0]!.munge;
    assert.ok(cred, 'x-berth-munge is sent');
    const un = spawnSync('unmunge', [], { input: cred });
    assert.equal(un.status, 0, un.stderr.toString());
    const text = un.stdout.toString();
    assert.match(text, /^UID:\s+nobody \(65534\)/m);
    assert.equal(text.slice(text.indexOf('\n\n') + 2), 'berth.v1/ExecStep:5');
  });
});
