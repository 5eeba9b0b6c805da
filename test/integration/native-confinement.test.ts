// The confinement a native task copies from its container (scripts/native/berth_confine.c),
// against a job container berth makes on the real dockerd of sandbox node n1 (its agent's
// services built in-process under a node name of their own, 'confine-itest'): the copied
// filter answers every syscall as the one a berth exec process runs under, a process that takes it on
// shows what a berth exec process shows and cannot make a user namespace, stacked filters keep
// their order, and no copy is made from a process without a filter or one another tracer holds.
// Run as root (the copy needs CAP_SYS_ADMIN), as the sandbox's tests are.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
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
import { StepRunner } from '../../services/agent/steps/step-runner';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { compareFilters, confineProbe, confinementOf, dumpFilters, type FilterDump, PRINT_CONFINEMENT } from '../support/confine-probe';
import { node, REPO, sandbox, uidOf } from '../support/stack';

const NODE = 'confine-itest';
const JOB = '900201';
const USERNS = 'busybox unshare -Ur true; echo "userns=$?"';

describe('copying a job container\'s confinement onto a process', { timeout: 120_000 }, () => {
  const n1 = node('n1');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-confine-itest-'));
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
  let initPid = 0;
  let work = '';

  /** a berth exec step in the job container: what it printed on stdout and stderr */
  async function exec(script: string, onOut?: (text: string) => void): Promise<{ out: string; err: string; exitCode: number }> {
    let out = '';
    let err = '';
    const { step } = await steps.start(jobs.get(JOB)!, { stepId: '0', taskId: 0, argv: ['sh', '-c', script], cwd: '/', env: [], tty: false },
      { name: 'alice', home: '/' }, { stdout: (b) => { out += b.toString(); onOut?.(out); }, stderr: (b) => (err += b.toString()) });
    const outcome = await step.done;
    return { out, err, exitCode: outcome.exitCode };
  }

  /** the probe taking the container's confinement on, then running script as alice on the host */
  function copied(script: string): { out: string; err: string; exitCode: number } {
    const r = spawnSync(confineProbe(), ['run', String(initPid), String(alice), String(alice), '--', 'sh', '-c', script], { encoding: 'utf8' });
    return { out: r.stdout, err: r.stderr, exitCode: r.status ?? -1 };
  }

  before(async () => {
    execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', initBinary, path.join(REPO, 'scripts/native/berth-init.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    confineProbe();
    work = mkdtempSync(path.join(os.tmpdir(), 'berth-confine-itest-work-'));
    chownSync(work, alice, alice);
    await jobs.prologue({ jobId: JOB, uid: alice, gid: alice, user: 'alice', image: sandbox().demoImage, workDir: work, cpus: 1, memoryBytes: 256 * 1024 * 1024 });
    const info = await engine.docker.getContainer(jobs.get(JOB)!.containerId).inspect();
    initPid = info.State.Pid;
    assert.ok(initPid > 1, 'the job container runs');
  });
  after(async () => {
    await jobs.epilogue(JOB).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('copies from the container\'s first process the filter a berth exec process runs under, answer for answer', async () => {
    const init = dumpFilters(initPid);
    assert.ok(init.count >= 1, 'a job container runs under a seccomp filter');
    assert.equal(init.capBnd, '0000000000000000', 'CapDrop ALL: an empty bounding set');
    let seen: { dump: FilterDump; against: ReturnType<typeof compareFilters> } | undefined;
    // the container shares the host's PID namespace: $$ is the host's PID of the exec's shell
    await exec('echo "pid=$$"; sleep 2', (text) => {
      const m = text.match(/^pid=(\d+)$/m);
      if (m && !seen) seen = { dump: dumpFilters(Number(m[1])), against: compareFilters(initPid, Number(m[1])) };
    });
    assert.ok(seen, 'the berth exec process was seen');
    assert.equal(seen.dump.count, init.count);
    assert.equal(seen.dump.capBnd, init.capBnd);
    assert.ok(seen.against.inputs > 100_000);
    assert.equal(seen.against.differ, 0, seen.against.text);
    // and the comparison tells filters apart: against no filter at all most answers differ
    assert.ok(compareFilters(initPid, 'none').differ > 1000);
  });

  it('gives a process that takes the copy on what a berth exec process has: same status lines, no user namespace', async () => {
    const script = `${PRINT_CONFINEMENT}; ${USERNS}`;
    const viaExec = await exec(script);
    const viaCopy = copied(script);
    assert.equal(viaCopy.exitCode, 0, viaCopy.err);
    const want = confinementOf(viaExec.out);
    assert.equal(want.Seccomp, '2', viaExec.out);
    assert.equal(want.NoNewPrivs, '1');
    assert.equal(want.CapBnd, '0000000000000000');
    assert.deepEqual(confinementOf(viaCopy.out), want);
    assert.match(viaExec.out, /^userns=1$/m);
    assert.match(viaCopy.out, /^userns=1$/m);
    assert.equal(viaCopy.err.trim(), viaExec.err.trim(), 'the same refusal');
    assert.match(viaCopy.err, /Operation not permitted/);
    // and it is the copy that refuses: the same user on the host may make one
    const host = spawnSync('runuser', ['-u', 'alice', '--', 'sh', '-c', USERNS], { encoding: 'utf8' });
    assert.match(host.stdout, /^userns=0$/m, `on this host alice may not make a user namespace anyway: ${host.stderr}`);
  });

  it('keeps stacked filters in their order: index 0 is the oldest, and the copy answers as the original', () => {
    const r = spawnSync(confineProbe(), ['order'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // the child stacked a 4-instruction filter answering EPERM, then a 7-instruction one
    // answering EACCES; with equal actions the newest filter's answer wins
    assert.equal(r.stdout.trim(), 'filters=2 len0=4 len1=7 original=EACCES copy=EACCES');
  });

  it('makes no copy from a process without a seccomp filter', () => {
    const sleeper = spawn('sleep', ['30']);
    try {
      assert.throws(() => dumpFilters(sleeper.pid!), /runs without a seccomp filter \(Seccomp: 0\)/);
    } finally {
      sleeper.kill();
    }
  });

  it('waits for another tracer to let go, and gives up after 5 s naming it', async () => {
    async function hold(seconds: number) {
      const holder = spawn(confineProbe(), ['hold', String(initPid), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (b: Buffer) => b.toString().includes('held') && resolve());
        holder.once('exit', (code) => reject(new Error(`the holder ended (${code}) before attaching`)));
      });
      return holder;
    }
    const brief = await hold(1);
    let t0 = Date.now();
    const dump = dumpFilters(initPid);
    assert.ok(dump.count >= 1);
    assert.ok(Date.now() - t0 < 4_000, 'copied once the holder let go');
    brief.kill();
    const long = await hold(20);
    try {
      t0 = Date.now();
      assert.throws(() => dumpFilters(initPid), new RegExp(`pid ${initPid} is traced by pid ${long.pid}, so its seccomp filter cannot be read`));
      assert.ok(Date.now() - t0 >= 4_500, 'waited before giving up');
    } finally {
      long.kill();
    }
    // the container's process was never stopped for good: it still serves execs
    assert.equal((await exec('echo alive')).out, 'alive\n');
  });
});
