// Interactive use through Slurm: `salloc --container-image=IMG srun --pty berth exec -- sh` on a
// real pseudo-terminal (test/support/pty-driver.py, 40x100): a terminal of that size inside the
// job's container that follows a resize, Ctrl-C interrupting the foreground job, Ctrl-D and `exit 5` ending the shell
// with their status; without --pty no terminal, as before.
import assert from 'node:assert/strict';
import { chownSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { REPO, sandbox, uidOf } from '../support/stack';
import { jobDir, run } from '../support/slurm';

type Step =
  | { expect: string; timeout?: number }
  | { send: string }
  | { resize: [number, number] }
  | { sleep: number }
  | { until: string; send: string; every?: number; timeout?: number };

interface Conversation {
  transcript: string;
  exit_code: number | null;
  signal: number | null;
  failed: { index: number; step: unknown } | null;
}

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', TERM: 'xterm' };
// busybox ash's prompt ('~/berth-tests/... $ ')
const PROMPT = '\\$ ';
// a line end: the container's terminal sends \r\n, and srun's local raw mode may keep output
// post-processing on (another \r)
const NL = '\\r+\\n';

function converse(dir: string, argv: string[], steps: Step[]): Conversation {
  const uid = uidOf('alice');
  const driver = path.join(dir, 'pty-driver.py');
  copyFileSync(path.join(REPO, 'test/support/pty-driver.py'), driver);
  chownSync(driver, uid, uid);
  const spec = path.join(dir, `conversation-${Date.now()}.json`);
  writeFileSync(spec, JSON.stringify({ argv, rows: 40, cols: 100, timeout: 150, steps }));
  chownSync(spec, uid, uid);
  const r = run('/usr/bin/python3', [driver, spec], { user: 'alice', cwd: dir, env: ENV, timeoutMs: 180_000 });
  assert.equal(r.code, 0, `pty driver: ${r.stderr}`);
  return JSON.parse(r.stdout) as Conversation;
}

// an allocation with the job's container (salloc, as users do), then a plain srun step in it: an
// srun that names a container on its own command line would be a native container step instead
const inAllocation = (salloc: string[], srun: string[], ...cmd: string[]) =>
  ['salloc', ...salloc, `--container-image=${sandbox().demoImage}`, 'srun', ...srun, 'berth', 'exec', '--', ...cmd];
const srunPty = (...cmd: string[]) => inAllocation(['-N1'], ['--pty'], ...cmd);

describe('interactive use: srun --pty berth exec', { timeout: 200_000 }, () => {
  it('gives a shell a terminal of the window size that follows resizes; Ctrl-C interrupts the foreground job; exit status comes back', () => {
    const dir = jobDir('alice', 'interactive');
    const c = converse(dir, srunPty('sh'), [
      { expect: PROMPT, timeout: 90 },
      { send: 'tty; stty size; id -u; echo "procid=$SLURM_PROCID term=$TERM"\r' },
      { expect: `/dev/pts/\\d+${NL}40 100${NL}${uidOf('alice')}${NL}procid=0 term=xterm${NL}` },
      { expect: PROMPT },
      // srun passes the change to slurmstepd's pty, berth exec gets SIGWINCH, berthd resizes
      { resize: [50, 132] },
      { until: `${NL}50 132${NL}`, send: 'stty size\r', every: 1, timeout: 20 },
      { expect: PROMPT },
      { send: 'sleep 100\r' },
      { sleep: 2 },
      { send: '\u0003' },
      { expect: '\\^C', timeout: 10 },
      { expect: PROMPT, timeout: 10 },
      { send: 'echo "status=$?"\r' },
      { expect: `status=130${NL}` },
      { send: 'exit 5\r' },
    ]);
    assert.equal(c.failed, null, `conversation stopped at ${JSON.stringify(c.failed)}:\n${c.transcript}`);
    assert.equal(c.exit_code, 5, c.transcript);
    // srun reports a task's non-zero status itself ('srun: error: n1: task 0: Exited with exit code 5')
    assert.match(c.transcript, /task 0: Exited with exit code 5/);
    assert.doesNotMatch(c.transcript, /berth exec:/);
  });

  it('srun --pty --container-image: a native container step gets the pty itself, with Ctrl-C and the exit status', () => {
    const dir = jobDir('alice', 'interactive-native');
    const c = converse(dir, ['srun', '-N1', '--pty', `--container-image=${sandbox().demoImage}`, 'sh'], [
      { expect: PROMPT, timeout: 90 },
      // the terminal is srun's pty from the host's devpts: a terminal (isatty), though tty(1)
      // finds no name for it in the container's /dev/pts
      { send: 'test -t 0 && test -t 1 && echo is-a-terminal; stty size; cat /etc/berth-demo-release\r' },
      { expect: `is-a-terminal${NL}40 100${NL}berth demo image 1\\.0${NL}` },
      { expect: PROMPT },
      { send: 'sleep 100\r' },
      { sleep: 2 },
      { send: '\u0003' },
      { expect: PROMPT, timeout: 10 },
      { send: 'echo "status=$?"\r' },
      { expect: `status=130${NL}` },
      { send: 'exit 6\r' },
    ]);
    assert.equal(c.failed, null, `conversation stopped at ${JSON.stringify(c.failed)}:\n${c.transcript}`);
    assert.equal(c.exit_code, 6, c.transcript);
  });

  it('ends the shell with Ctrl-D at an empty prompt, exit status 0', () => {
    const dir = jobDir('alice', 'interactive-eof');
    const c = converse(dir, srunPty('sh'), [{ expect: PROMPT, timeout: 90 }, { send: '\u0004' }]);
    assert.equal(c.failed, null, c.transcript);
    assert.equal(c.exit_code, 0, c.transcript);
  });

  it('gives the terminal to task 0 only, as srun --pty does', () => {
    const dir = jobDir('alice', 'interactive-tasks');
    // srun --pty sends the other tasks' output to /dev/null: each task writes what it saw to a file
    const argv = inAllocation(['-N1', '-n2'], ['-n2', '--pty'], 'sh', '-c',
      `if [ -t 0 ]; then echo "tty $(stty size)"; else echo no-tty; fi > ${dir}/task-$SLURM_PROCID.txt; echo "task $SLURM_PROCID done"`);
    const c = converse(dir, argv, [{ expect: 'task 0 done', timeout: 90 }]);
    assert.equal(c.failed, null, c.transcript);
    assert.equal(c.exit_code, 0, c.transcript);
    assert.equal(readFileSync(path.join(dir, 'task-0.txt'), 'utf8'), 'tty 40 100\n');
    assert.equal(readFileSync(path.join(dir, 'task-1.txt'), 'utf8'), 'no-tty\n');
    assert.doesNotMatch(c.transcript, /task 1 done/);
  });

  it('without --pty: no terminal, and stdout and stderr stay apart, as before', () => {
    const dir = jobDir('alice', 'not-interactive');
    const [cmd, ...args] = inAllocation(['-N1'], [], 'sh', '-c', 'if [ -t 0 ] || [ -t 1 ]; then echo tty; else echo no-tty; fi; echo to-stderr >&2; exit 4');
    const r = run(cmd!, args, { user: 'alice', cwd: dir, env: ENV });
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stdout, 'no-tty\n');
    assert.match(r.stderr, /^to-stderr$/m);
    assert.doesNotMatch(r.stderr, /berth exec:/);
  });
});
