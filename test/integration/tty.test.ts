// Interactive steps against the real dockerd of sandbox node n1, with the agent's services built
// in-process under a node name of their own ('tty-itest'): a terminal of the client's size that
// follows resizes, Ctrl-C and Ctrl-D acted on by the container's terminal, the exit status.
// The job container mounts a berth-init built from this tree (the size at start is its work).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import { loadConfig } from '../../services/agent/config';
import { ImageUserFilesCache } from '../../services/agent/containers/image-user-files';
import { nodeMemlock } from '../../services/agent/containers/memlock';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { NssIdentityResolver } from '../../services/agent/identity/nss';
import { ImageService } from '../../services/agent/images/image-service';
import { jobParts } from '../support/job-parts';
import { JobTable } from '../../services/agent/jobs/job-table';
import { silentLogger } from '../../services/agent/logger';
import { type RunningStep, type StepOutcome, StepRunner } from '../../services/agent/steps/step-runner';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { node, REPO, sandbox, uidOf } from '../support/stack';

const NODE = 'tty-itest';
const JOB = '900101';

/** One tty step: what it printed so far, and keys typed into it. */
class TtySession {
  out = '';
  err = '';
  step!: RunningStep;
  private mark = 0;

  /** Waits until the output since the last mark matches re, then moves the mark past the match. */
  async expect(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = this.out.slice(this.mark).match(re);
      if (m) {
        this.mark += m.index! + m[0].length;
        return m;
      }
      if (Date.now() > until) throw new Error(`timed out waiting for ${re} in ${JSON.stringify(this.out.slice(this.mark))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  type(text: string | Buffer): void {
    this.step.write(typeof text === 'string' ? Buffer.from(text) : text);
  }

  async ended(timeoutMs = 10_000): Promise<StepOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the step did not end; output: ${JSON.stringify(this.out)}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.step.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

// busybox ash's prompt for a user in / ('/ $ '), maybe followed by control sequences of its
// line editor (a cursor-position query, a clear to the end of screen when it redraws)
const PROMPT = /\$ (\x1b\[[0-9;]*[A-Za-z])*$/;

describe('interactive steps on a real engine', { timeout: 120_000 }, () => {
  const n1 = node('n1');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-tty-itest-'));
  const initBinary = path.join(dir, 'berth-init');
  const config = loadConfig(undefined, {
    node: NODE, stateDir: path.join(dir, 'state'), accountingFile: path.join(dir, 'acct.jsonl'),
    dockerHost: `unix://${n1.dockerSocket}`, initBinary, stopGraceSeconds: 2,
  });
  const log = silentLogger();
  const engine = new DockerodeEngine(n1.dockerSocket);
  const images = new ImageService(engine, new RegistryClient(), { timeoutMs: 60_000, inactivityMs: 30_000 }, log);
  const { jobs, ledger } = jobParts({
    config, engine, images, imageUserFiles: new ImageUserFilesCache(engine, NODE), identities: new NssIdentityResolver(),
    table: new JobTable(config.stateDir), accounting: new AccountingLog(config.accountingFile), log, memlockBytes: nodeMemlock(-1).bytes,
  });
  const steps = new StepRunner(engine, ledger, log);
  const alice = uidOf('alice');

  async function session(argv: string[], size?: { rows: number; cols: number }): Promise<TtySession> {
    const s = new TtySession();
    const job = jobs.get(JOB)!;
    const { step } = await steps.start(job, { stepId: '0', taskId: 0, argv, cwd: '/', env: ['TERM=xterm'], tty: true, ...(size ? { size } : {}) },
      { name: 'alice', home: '/' }, { stdout: (b) => (s.out += b.toString()), stderr: (b) => (s.err += b.toString()) });
    s.step = step;
    return s;
  }

  async function processes(): Promise<string[]> {
    // docker top needs the pid column
    const top = await engine.docker.getContainer(jobs.get(JOB)!.containerId).top({ ps_args: '-o pid,args' });
    return (top.Processes as string[][]).map((p) => p[1] ?? '');
  }

  before(async () => {
    // the berth-init of this tree, static as scripts/build-native.sh builds it
    execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', initBinary, path.join(REPO, 'scripts/native/berth-init.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const work = mkdtempSync(path.join(os.tmpdir(), 'berth-tty-itest-work-'));
    chownSync(work, alice, alice);
    await jobs.prologue({ jobId: JOB, uid: alice, gid: alice, user: 'alice', image: sandbox().demoImage, workDir: work, cpus: 1, memoryBytes: 256 * 1024 * 1024 });
  });
  after(async () => {
    await jobs.epilogue(JOB).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives a command the window size before it runs: a one-shot `stty size`', async () => {
    // docker's exec resize comes after the process started; this would see 0x0 most times
    for (let i = 0; i < 3; i++) {
      // the demo image has no stty link: busybox's shell runs its applet
      const s = await session(['sh', '-c', 'stty size'], { rows: 40, cols: 100 });
      const outcome = await s.ended();
      assert.equal(s.out, '40 100\r\n', `run ${i}`);
      assert.equal(outcome.exitCode, 0);
    }
  });

  it('is a terminal of the initial size that follows a resize, and the size variable does not reach the shell', async () => {
    const s = await session(['sh'], { rows: 40, cols: 100 });
    await s.expect(PROMPT);
    s.type('tty; stty size; echo "var=[${BERTH_TTY_SIZE-unset}]"\r');
    await s.expect(/\/dev\/pts\/\d+\r\n40 100\r\nvar=\[unset\]\r\n/);
    await s.expect(PROMPT);
    s.step.resize(50, 132);
    await s.step.resized();
    s.type('stty size\r');
    await s.expect(/\r\n50 132\r\n/);
    await s.expect(PROMPT);
    s.type('exit\r');
    assert.equal((await s.ended()).exitCode, 0);
    assert.equal(s.err, '', 'a terminal has no separate stderr');
  });

  it('Ctrl-C (0x03 on stdin) interrupts `sleep 100` through the terminal; the interactive shell survives', async () => {
    const s = await session(['sh'], { rows: 24, cols: 80 });
    await s.expect(PROMPT);
    s.type('sleep 100\r');
    const until = Date.now() + 10_000;
    while (!(await processes()).includes('sleep 100')) {
      assert.ok(Date.now() < until, 'sleep 100 started in the container');
      await new Promise((r) => setTimeout(r, 50));
    }
    s.type(Buffer.from([0x03]));
    await s.expect(/\^C/);
    await s.expect(PROMPT);
    assert.ok(!(await processes()).includes('sleep 100'), 'the sleep is gone');
    s.type('echo "status=$?"\r');
    // 130 = 128 + SIGINT: the terminal's line discipline signalled the foreground job
    await s.expect(/status=130\r\n/);
    await s.expect(PROMPT);
    s.type(Buffer.from([0x04]));
    assert.deepEqual(await s.ended(), { state: 'EXITED', exitCode: 0, signal: '' });
  });

  it('Ctrl-D (0x04) at an empty prompt ends the shell with exit status 0', async () => {
    const s = await session(['sh'], { rows: 24, cols: 80 });
    await s.expect(PROMPT);
    s.type(Buffer.from([0x04]));
    assert.deepEqual(await s.ended(), { state: 'EXITED', exitCode: 0, signal: '' });
  });

  it("returns the command's exit status, and its stderr on the terminal", async () => {
    const s = await session(['sh', '-c', 'echo to-stderr >&2; exit 3']);
    const outcome = await s.ended();
    assert.deepEqual(outcome, { state: 'EXITED', exitCode: 3, signal: '' });
    assert.equal(s.out, 'to-stderr\r\n');
    assert.equal(s.err, '');
    const rec = jobs.get(JOB)!.steps.at(-1)!;
    assert.equal(rec.exitCode, 3);
  });
});
