// Fault drills (issue 12, item 6): what berth stands on taken away under a job — the node's
// dockerd restarted, the site registry down at a prolog, slurmctld down during a prolog,
// munged down, a job's mount source gone before it starts. Each drill ends with the same
// invariants as test/e2e/agent-restart.test.ts (test/support/invariants.ts): no container of an
// ended job on any engine, each job's accounting record on each node it ran on exactly once,
// no node drained, and a failed job's user told why where they read it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, mkdirSync, chownSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { BerthdLog, sleep, until } from '../support/berthd';
import { dockerdArgv, dockerdPid, ensureDockerd, restartDockerd, startDockerd, stopDockerd } from '../support/dockerd';
import { forgetImage, pushBusyboxImage, pushPaddedImage, registryDigest } from '../support/images';
import { assertDrillInvariants, drainedNodes, finalState, jobFields, jobRecordsOn } from '../support/invariants';
import { containersOfJob, jobDir, jobIdFrom, readIfExists, resumeNodes, run, waitFor } from '../support/slurm';
import { node, sandbox, uidOf } from '../support/stack';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const RUN = '/run/berth-sandbox';
const LOGS = '/var/log/berth-sandbox';
const STAMP = Date.now().toString(36);
/** big enough that the prolog's pull outlasts slurmctld's shutdown (about 1.5 s); pulled on n1
 * (n3's engine may sit on a small disk of its own for the disk-full drills) */
const PADDED_MB = 200;
const PADDED_REPO = '127.0.0.1:5000/berth/drill-ctld-padded';
const PADDED = `${PADDED_REPO}:1`;

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

function sbatch(args: string[], dir: string, user = 'alice'): string {
  const sub = run('sbatch', ['--parsable', ...args], { user, cwd: dir, env: { PATH } });
  assert.equal(sub.code, 0, `sbatch failed: ${sub.stderr}`);
  return jobIdFrom(`Submitted batch job ${sub.stdout.trim().split(';')[0]}`);
}

function adminComment(jobId: string): string {
  return /^\s*AdminComment=(.*?)\s*$/m.exec(run('scontrol', ['show', 'job', jobId]).stdout)?.[1] ?? '';
}

function pidIn(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return /^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')) ? undefined : pid;
  } catch {
    return undefined;
  }
}

async function stopByPidFile(file: string, what: string): Promise<number> {
  const pid = pidIn(file);
  if (pid === undefined) throw new Error(`${what} is not running (pid file ${file})`);
  process.kill(pid, 'SIGTERM');
  await until(`${what} (pid ${pid}) gone`, () => pidIn(file) !== pid || !existsSync(`/proc/${pid}`), 30_000, 20);
  return Date.now();
}

/** a daemon of the sandbox's, started as scripts/sandbox.d/common.sh's start_bg does */
function startBg(pidFile: string, logFile: string, argv: string[]): void {
  const out = openSync(logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { cwd: '/', stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  child.unref();
  writeFileSync(pidFile, `${child.pid}\n`);
}

// the registry's front (nginx, scripts/sandbox.d/registry.sh): 127.0.0.1:5000 answers nothing while it is down
const FRONT_PID = `${RUN}/registry-front.pid`;
const startRegistryFront = (): void => startBg(FRONT_PID, `${LOGS}/registry-front.log`,
  ['/usr/sbin/nginx', '-c', '/var/lib/berth-sandbox/registry/nginx.conf', '-g', `user www-data; pid ${FRONT_PID}; daemon off;`]);
async function registryAnswers(): Promise<boolean> {
  return fetch(`http://${sandbox().registry.address}/v2/`).then((r) => r.ok, () => false);
}
/** after the front's restart: until a few requests in a row get through (the first ones may meet kept-alive sockets to the old nginx) */
async function registryBack(): Promise<void> {
  for (let ok = 0, tries = 0; ok < 3; tries++) {
    if (tries > 200) throw new Error('the registry front does not answer after its restart');
    ok = (await registryAnswers()) ? ok + 1 : 0;
    if (ok < 3) await sleep(100);
  }
}

// slurmctld (scripts/sandbox.d/slurm.sh)
const CTLD_PID = `${RUN}/slurmctld.pid`;
const startSlurmctld = (): void => startBg(CTLD_PID, `${LOGS}/slurmctld.out`, ['/usr/sbin/slurmctld', '-D']);
const ctldUp = (): boolean => /is UP/.test(run('scontrol', ['ping']).stdout);

// munged (scripts/sandbox.d/munge.sh)
const MUNGE_PID = `${RUN}/munged.pid`;
const startMunged = (): void => startBg(MUNGE_PID, `${LOGS}/munged.log`,
  ['setpriv', '--reuid=munge', '--regid=munge', '--init-groups', '/usr/sbin/munged', '--foreground', `--log-file=${LOGS}/munged.log`]);
const mungeWorks = (): boolean => run('sh', ['-c', 'munge -n -s drill | unmunge >/dev/null']).code === 0;

describe('fault drills: the node\'s engine, the registry, slurmctld, munge and a mount source taken away under a job', { timeout: 300_000 }, () => {
  const cancel: string[] = [];
  const restore: (() => Promise<void> | void)[] = [];
  before(() => {
    sandbox();
    resumeNodes();
  });
  // a drill that failed with a node drained must not fail the next ones too (its own invariants caught it)
  beforeEach(() => resumeNodes());
  after(async () => {
    for (const undo of restore.reverse()) await undo();
    for (const id of cancel) run('scancel', [id]);
    await ensureDockerd(['n1', 'n2', 'n3']);
    resumeNodes();
  });

  // berth exec steps are docker exec sessions: their output and exit status travel on the
  // hijacked connection to dockerd, which a restart of dockerd cuts even with live-restore
  // (dockerd does not restore exec sessions). What live-restore buys is the job: its container
  // outlives dockerd and the job's later steps run in it. The running step is lost, and said
  // so (docs/operations.md, "When dockerd restarts").
  it('1. dockerd restarted (SIGTERM, started again) under a running berth exec step: with live-restore the job container survives and the next step runs in it; the cut step ends 137', async (t) => {
    const cfg = JSON.parse(readFileSync('/var/lib/berth-sandbox/n1/daemon.json', 'utf8')) as Record<string, unknown>;
    assert.equal(cfg['live-restore'], true, 'the sandbox ships daemon.json with live-restore');
    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-dockerd');
    const out = path.join(dir, 'out.txt');
    const log = new BerthdLog('n1');
    const jobId = sbatch(['-N1', '-w', 'n1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out,
      '--wrap', 'srun berth exec -- sh -c \'sleep 8; echo survived\'; echo "first step: $?"; srun berth exec -- sh -c \'echo next step ran in $(hostname)\''], dir);
    cancel.push(jobId);
    const started = await until(`job ${jobId}'s step started`, () => log.find((l) => l.message === 'step started' && l.job === jobId), 60_000, 50);
    const [container] = containersOfJob('n1', jobId, 'running');
    assert.ok(container, 'the job container runs');
    await sleep(1000);
    const r = await restartDockerd('n1');
    const stillThere = containersOfJob('n1', jobId, 'running');
    const state = finalState(jobId);
    const ended = log.lines().filter((l) => l.message === 'step ended' && l.job === jobId);
    const text = readIfExists(out);
    t.diagnostic(`dockerd stopped ${secs(r.goneAt - r.signalledAt)} after SIGTERM, answered again ${secs(r.pingAt - r.goneAt)} later `
      + `(the engine away ${secs(r.pingAt - r.signalledAt)}), ${secs(r.signalledAt - Date.parse(started.timestamp))} into the step; `
      + `job container after the restart: ${stillThere.length ? 'running' : 'gone'}; berthd's steps ended: ${ended.map((l) => `${String(l.state)} ${String(l.exitCode)} ${secs(Date.parse(l.timestamp) - r.signalledAt)} after the SIGTERM`).join(', ')}; `
      + `job ${state}; output: ${JSON.stringify(text)}`);
    assert.deepEqual(stillThere, [container], 'live-restore: the job container outlives dockerd');
    assert.match(text, /^first step: 137$/m, 'the cut step ends 137, as srun says');
    assert.doesNotMatch(text, /^survived$/m, 'a berth exec step does not outlive dockerd (docs/operations.md says so)');
    assert.match(text, /^next step ran in /m, 'the next step runs in the surviving container');
    assert.equal(state, 'COMPLETED');
    assertDrillInvariants([{ jobId, nodes: ['n1'], since, state }]);
  });

  it('1b. (without live-restore, measured for docs/operations.md) dockerd restarted under a step: the container dies with it, the step and the job fail, nothing is left behind', async (t) => {
    const file = '/var/lib/berth-sandbox/n2/daemon.json';
    const shipped = readFileSync(file, 'utf8');
    const without = JSON.parse(shipped) as Record<string, unknown>;
    delete without['live-restore'];
    let restored = false;
    const putBack = async (): Promise<void> => {
      if (restored) return;
      restored = true;
      writeFileSync(file, shipped);
      await restartDockerd('n2');
    };
    restore.push(putBack);
    writeFileSync(file, JSON.stringify(without, null, 2));
    await restartDockerd('n2');
    try {
      const since = new Date().toISOString();
      const dir = jobDir('alice', 'drill-dockerd-nolr');
      const out = path.join(dir, 'out.txt');
      const log = new BerthdLog('n2');
      const jobId = sbatch(['-N1', '-w', 'n2', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out,
        '--wrap', 'srun berth exec -- sh -c \'sleep 8; echo survived\'; e=$?; echo "step-exit=$e"; srun berth exec -- true; echo "next-step-exit=$?"; exit $e'], dir);
      cancel.push(jobId);
      await until(`job ${jobId}'s step started`, () => log.find((l) => l.message === 'step started' && l.job === jobId), 60_000, 50);
      await sleep(1000);
      const r = await restartDockerd('n2');
      const left = containersOfJob('n2', jobId);
      const running = containersOfJob('n2', jobId, 'running');
      const state = finalState(jobId);
      t.diagnostic(`without live-restore dockerd stopped ${secs(r.goneAt - r.signalledAt)} after SIGTERM (it stops the containers first), answered ${secs(r.pingAt - r.goneAt)} later; `
        + `job container after the restart: ${running.length ? 'running' : left.length ? 'stopped' : 'gone'}; job ${state}; output: ${JSON.stringify(readIfExists(out))}`);
      assert.deepEqual(running, [], 'the job container died with dockerd');
      assert.doesNotMatch(readIfExists(out), /^survived$/m);
      assert.doesNotMatch(readIfExists(out), /^step-exit=0$/m);
      assertDrillInvariants([{ jobId, nodes: ['n2'], since, state: 'FAILED' }]);
    } finally {
      await putBack();
    }
  });

  it('2. the registry (its nginx front) down at the prolog: a cached image runs; an uncached one fails the job, naming the registry, and drains nothing', async (t) => {
    const since = new Date().toISOString();
    const demo = sandbox().demoImage;
    assert.equal(run('berth', ['pull', demo, '--nodes', 'n1']).code, 0, 'the demo image is cached on n1');
    const uncached = `127.0.0.1:5000/berth/drill-regdown:${STAMP}`;
    pushBusyboxImage(uncached, { 'etc/drill-regdown': 'regdown\n' });
    forgetImage(node('n2').dockerSocket, '127.0.0.1:5000/berth/drill-regdown');
    const dir = jobDir('alice', 'drill-regdown');
    const f = (n: string) => ({ out: path.join(dir, `${n}.out`), err: path.join(dir, `${n}.err`) });
    const cached = sbatch(['--hold', '-N1', '-w', 'n1', '--no-container-batch', `--container-image=${demo}`, '-o', f('a').out, '-e', f('a').err, '--wrap', 'srun berth exec -- cat /etc/berth-demo-release'], dir);
    const missing = sbatch(['--hold', '-N1', '-w', 'n2', '--no-container-batch', `--container-image=${uncached}`, '-o', f('b').out, '-e', f('b').err, '--wrap', 'echo batch-ran; srun berth exec -- cat /etc/drill-regdown'], dir);
    cancel.push(cached, missing);
    const stoppedAt = await stopByPidFile(FRONT_PID, 'the registry front (nginx)');
    const frontBack = async (): Promise<void> => {
      if (!pidIn(FRONT_PID)) startRegistryFront();
      await registryBack();
    };
    restore.push(() => frontBack().catch(() => undefined));
    try {
      assert.equal(await registryAnswers(), false, '127.0.0.1:5000 does not answer');
      for (const id of [cached, missing]) assert.equal(run('scontrol', ['release', id]).code, 0);
      const logN2 = new BerthdLog('n2');
      let comment = '';
      const failedAt = await until(`job ${missing} ended`, () => {
        comment = adminComment(missing) || comment;
        return /FAILED|COMPLETED|CANCELLED/.test(jobFields(missing).JobState ?? '') ? Date.now() : undefined;
      }, 120_000, 200);
      comment = adminComment(missing) || comment;
      assertDrillInvariants([{ jobId: cached, nodes: ['n1'], since, state: 'COMPLETED' }]);
      const reason = /registry 127\.0\.0\.1:5000 could not be reached for image '127\.0\.0\.1:5000\/berth\/drill-regdown@sha256:[0-9a-f]{64}' \(.*\); ask the site admins to check the registry/;
      const failure = logN2.find((l) => l.message === 'prologue failed' && l.job === missing);
      t.diagnostic(`registry front stopped; job ${missing} (uncached on n2) ended ${secs(failedAt - stoppedAt)} later; berthd: ${JSON.stringify(failure ?? null)}; `
        + `its error file: ${JSON.stringify(readIfExists(f('b').err))}; job ${cached} (cached on n1) printed ${JSON.stringify(readIfExists(f('a').out))}`);
      assert.match(readIfExists(f('a').out), /berth demo image 1\.0/);
      assert.equal(failure?.code, 'REGISTRY_UNAVAILABLE');
      assert.equal(failure?.fault, 'job');
      assert.match(comment, new RegExp(`^berth: job ${missing} failed on n2 before its first step: ${reason.source}`), `AdminComment: ${comment}`);
      assert.doesNotMatch(readIfExists(f('b').out), /batch-ran/);
      // no container was made for it on n2, so berth has no accounting record of it there (sacct has the job, FAILED, with the AdminComment)
      assertDrillInvariants([{ jobId: missing, nodes: ['n2'], since, state: 'FAILED', toldWhy: { pattern: new RegExp(`^berth: job ${missing} fails on n2, no step runs there: ${reason.source}$`, 'm'), where: () => readIfExists(f('b').err) } }]);
    } finally {
      await frontBack();
    }
  });

  it('3. slurmctld down for 5 s while a prolog pulls a large image: the job completes, no node drains', async (t) => {
    const since = new Date().toISOString();
    const digest = await pushPaddedImage(PADDED, PADDED_MB);
    forgetImage(node('n1').dockerSocket, PADDED_REPO);
    const dir = jobDir('alice', 'drill-ctld');
    const out = path.join(dir, 'out.txt');
    const log = new BerthdLog('n1');
    const jobId = sbatch(['-N1', '-w', 'n1', '--no-container-batch', `--container-image=${PADDED}`, '-o', out, '--wrap', 'srun berth exec -- cat /etc/padded-release'], dir);
    cancel.push(jobId);
    const pulling = await until('n1\'s berthd pulling the image', () => log.find((l) => l.message === 'pulling image' && l.image === digest), 60_000, 10);
    const signalledAt = Date.now();
    const stoppedAt = await stopByPidFile(CTLD_PID, 'slurmctld');
    const ctldBack = async (): Promise<void> => {
      if (!pidIn(CTLD_PID)) startSlurmctld();
      await until('slurmctld answering', () => ctldUp(), 30_000, 100);
    };
    restore.push(() => ctldBack().catch(() => undefined));
    let pulledWhileDown, made;
    try {
      pulledWhileDown = log.find((l) => l.message === 'job container started' && l.job === jobId);
      await sleep(5000);
      made = log.find((l) => l.message === 'job container started' && l.job === jobId);
    } finally {
      await ctldBack();
    }
    const upAt = Date.now();
    t.diagnostic(`slurmctld signalled ${secs(signalledAt - Date.parse(pulling.timestamp))} into the pull, gone ${secs(stoppedAt - signalledAt)} later, down ${secs(upAt - stoppedAt)}; `
      + `the job container started ${made ? `${secs(Date.parse(made.timestamp) - stoppedAt)} after the stop (slurmctld down)` : 'after slurmctld was back'}${pulledWhileDown ? ' (before the stop had finished)' : ''}`);
    assertDrillInvariants([{ jobId, nodes: ['n1'], since, state: 'COMPLETED' }]);
    assert.match(readIfExists(out), new RegExp(`padded ${PADDED_MB} MB`));
  });

  it('4. munged down: a user\'s berth call says so in one line, root\'s admin calls and the hooks work; after munged is back a job runs', async (t) => {
    assert.ok(pidIn(MUNGE_PID), 'the sandbox started munged (not a system one it reuses)');
    const dir = jobDir('alice', 'drill-munge');
    const demoDigest = await registryDigest(sandbox().demoImage);
    assert.ok(demoDigest);
    let back = 0;
    await stopByPidFile(MUNGE_PID, 'munged');
    const mungeBack = async (): Promise<number> => {
      if (!mungeWorks()) startMunged();
      await until('munged answering', () => mungeWorks(), 10_000, 100);
      return Date.now();
    };
    restore.push(() => mungeBack().then(() => undefined, () => undefined));
    try {
      assert.equal(mungeWorks(), false, 'munge -n fails with munged stopped');
      const user = run('berth', ['status', '--node', 'n1'], { user: 'alice', cwd: dir, env: { PATH } });
      const userJob = run('berth', ['job', '1', '--node', 'n1'], { user: 'alice', cwd: dir, env: { PATH } });
      const exec = run('berth', ['exec', '--', 'true'], { user: 'alice', cwd: dir, env: { PATH, SLURM_JOB_ID: '1', SLURMD_NODENAME: 'n1' } });
      t.diagnostic(`as alice, munged down: berth status -> ${user.code} ${JSON.stringify(user.stderr)}; berth job -> ${userJob.code} ${JSON.stringify(userJob.stderr)}; berth exec -> ${exec.code} ${JSON.stringify(exec.stderr)}`);
      for (const r of [user, userJob, exec]) {
        assert.notEqual(r.code, 0);
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
        assert.match(r.stderr, /munged is not running on this node \(.*\); berth authenticates you to berthd with munge: ask the site admins to start it \(systemctl start munge\)/);
      }
      const admin = run('berth', ['status', '--node', 'n1']);
      assert.equal(admin.code, 0, `root's berth status over the admin socket: ${admin.stderr}`);
      assert.match(admin.stdout, /^n1\s+serving/m);
      // the hooks run as root on the admin socket: a whole prologue and epilogue by hand, as slurmd would run them
      const fake = String(900_000_000 + Math.floor(Math.random() * 1_000_000));
      const hookEnv = {
        SLURM_JOB_ID: fake, SLURM_JOB_UID: String(uidOf('alice')), SLURM_JOB_GID: String(uidOf('alice')), SLURM_JOB_USER: 'alice',
        SLURMD_NODENAME: 'n1', SLURM_JOB_NODELIST: 'n1', SLURM_JOB_NUM_NODES: '1', SLURM_JOB_WORK_DIR: dir, SLURM_CPUS_ON_NODE: '1',
        SLURM_SCRIPT_CONTEXT: 'prolog_slurmd', SPANK_BERTH_CONTAINER_IMAGE: demoDigest!, BERTH_HOOK_RETRY_SECONDS: '0',
      };
      const began = Date.now();
      const prolog = run('/usr/local/lib/berth/hooks/prolog', [], { env: hookEnv });
      const prologMs = Date.now() - began;
      const made = containersOfJob('n1', fake, 'running');
      const epilog = run('/usr/local/lib/berth/hooks/epilog', [], { env: { ...hookEnv, SLURM_SCRIPT_CONTEXT: 'epilog_slurmd' } });
      t.diagnostic(`root's berth status answered; the prolog hook by hand (job ${fake}) exited ${prolog.code} in ${secs(prologMs)} ${JSON.stringify(prolog.stderr.trim())}, `
        + `its container ${made.length ? 'running' : 'missing'}; the epilog exited ${epilog.code} ${JSON.stringify(epilog.stderr.trim())}`);
      assert.equal(prolog.code, 0, prolog.stderr);
      assert.equal(made.length, 1, 'the prologue made the job container');
      assert.equal(epilog.code, 0, epilog.stderr);
      assert.deepEqual(containersOfJob('n1', fake), [], 'the epilogue removed it');
    } finally {
      back = await mungeBack();
    }
    // slurmctld and the slurmds talk again once munge answers
    const since = new Date().toISOString();
    const out = path.join(dir, 'out.txt');
    const jobId = await until('sbatch accepted after munged is back', () => {
      const r = run('sbatch', ['--parsable', '-N1', '-w', 'n1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, '--wrap', 'srun berth exec -- cat /etc/berth-demo-release'], { user: 'alice', cwd: dir, env: { PATH } });
      return r.code === 0 ? r.stdout.trim().split(';')[0] : undefined;
    }, 30_000, 500);
    cancel.push(jobId);
    assertDrillInvariants([{ jobId, nodes: ['n1'], since, state: 'COMPLETED' }]);
    assert.match(readIfExists(out), /berth demo image 1\.0/);
    const user2 = run('berth', ['status', '--node', 'n1'], { user: 'alice', cwd: dir, env: { PATH } });
    t.diagnostic(`after munged was back (${secs(Date.now() - back)} ago) job ${jobId} completed; alice's berth status -> ${user2.code} ${JSON.stringify(user2.stderr.trim())}`);
    assert.doesNotMatch(user2.stderr, /munge/);
  });

  it('5. a --container-mounts source removed between submit and start: the job fails naming the path, no node drains', async (t) => {
    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-mount');
    const data = path.join(dir, 'data');
    mkdirSync(data);
    chownSync(data, uidOf('alice'), uidOf('alice'));
    const err = path.join(dir, 'err.txt');
    const out = path.join(dir, 'out.txt');
    const jobId = sbatch(['--hold', '-N1', '-w', 'n3', '--no-container-batch', `--container-image=${sandbox().demoImage}`, `--container-mounts=${data}:/data`, '-o', out, '-e', err,
      '--wrap', 'echo batch-ran; srun berth exec -- ls /data'], dir);
    cancel.push(jobId);
    rmSync(data, { recursive: true });
    const log = new BerthdLog('n3');
    assert.equal(run('scontrol', ['release', jobId]).code, 0);
    let comment = '';
    waitFor(`job ${jobId} ended`, () => {
      comment = adminComment(jobId) || comment;
      return /FAILED|COMPLETED|CANCELLED/.test(jobFields(jobId).JobState ?? '') || undefined;
    }, 120_000);
    comment = adminComment(jobId) || comment;
    const failure = log.find((l) => l.message === 'prologue failed' && l.job === jobId);
    t.diagnostic(`berthd: ${JSON.stringify(failure ?? null)}; error file: ${JSON.stringify(readIfExists(err))}; AdminComment: ${comment}`);
    const names = new RegExp(data.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    assert.equal(failure?.fault, 'job');
    assert.match(comment, names);
    assert.doesNotMatch(readIfExists(out), /batch-ran/);
    assertDrillInvariants([{ jobId, nodes: ['n3'], since, state: 'FAILED', toldWhy: { pattern: new RegExp(`^berth: job ${jobId} fails on n3, no step runs there: .*${names.source}`, 'm'), where: () => readIfExists(err) } }]);
  });
  it('6. dockerd reloaded while it names berth\'s AuthZ plugin as a flag (the reload drops it): the next container job finds out, drains the node as a node fault and makes nothing', async (t) => {
    const original = dockerdArgv('n1');
    const cfgAt = original.indexOf('--config-file');
    assert.ok(cfgAt > 0, `n1's dockerd runs with --config-file: ${original.join(' ')}`);
    const cfg = JSON.parse(readFileSync(original[cfgAt + 1]!, 'utf8')) as Record<string, unknown>;
    delete cfg['authorization-plugins'];
    const flagged = path.join(RUN, 'n1', `daemon-flagged-${STAMP}.json`);
    writeFileSync(flagged, JSON.stringify(cfg));
    const argv = [...original];
    argv[cfgAt + 1] = flagged;
    argv.push('--authorization-plugin', 'berth-n1');
    const since = new Date().toISOString();
    let jobId = '';
    try {
      await stopDockerd('n1');
      await startDockerd('n1', 60_000, argv);
      process.kill(dockerdPid('n1')!, 'SIGHUP');
      await until('n1\'s dockerd reloaded', () => /Reloaded configuration/.test(readIfExists(`${LOGS}/n1/dockerd.log`).slice(-20_000)) || undefined, 20_000, 100);
      const audit = `${LOGS}/n1/authz-audit.jsonl`;
      const before = readIfExists(audit).length;
      run('docker', ['-H', `unix://${node('n1').dockerSocket}`, 'ps', '-q']);
      await sleep(300);
      const unjudged = readIfExists(audit).length === before;
      const dir = jobDir('alice', 'drill-authz-dropped');
      const log = new BerthdLog('n1');
      const submitted = Date.now();
      jobId = sbatch(['-N1', '-w', 'n1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', path.join(dir, 'out.txt'), '--wrap', 'srun berth exec -- echo ran'], dir);
      cancel.push(jobId);
      const reason = await until('n1 drained', () => run('sinfo', ['-h', '-n', 'n1', '-o', '%E']).stdout.trim().replace(/^none$/, '') || undefined, 120_000, 200);
      const failed = log.find((l) => l.message === 'prologue failed' && l.job === jobId);
      t.diagnostic(`after the reload dockerd ${unjudged ? 'no longer asked' : 'still asked'} the plugin about root's docker ps; n1 drained ${secs(Date.now() - submitted)} after sbatch: ${reason}; berthd: ${String(failed?.error)}`);
      assert.ok(unjudged, 'the reload dropped the plugin given as a flag (what this drill is about)');
      assert.match(reason, /^berth: node config: /);
      assert.equal(failed?.code, 'NODE_CONFIG');
      assert.equal(failed?.fault, 'node');
      assert.match(String(failed?.error), /does not ask berth's AuthZ plugin 'berth-n1'/);
      assert.deepEqual(containersOfJob('n1', jobId), [], 'nothing was made on a node whose dockerd judges nothing');
    } finally {
      if (dockerdPid('n1') !== undefined) await stopDockerd('n1');
      await startDockerd('n1', 60_000, original);
      rmSync(flagged, { force: true });
    }
    if (jobId) run('scancel', [jobId]);
    assertDrillInvariants([{ jobId, nodes: [], since, state: 'CANCELLED' }], { drained: ['n1'] });
    assert.deepEqual(jobRecordsOn('n1', { jobId, since }), [], 'a node fault: the node ran nothing of the job');
    assert.deepEqual(drainedNodes().map((l) => l.split(' ')[0]), ['n1']);
    resumeNodes();
    // dockerd as the sandbox runs it asks the plugin again, and jobs run on n1
    const dir = jobDir('alice', 'drill-authz-back');
    const ok = run('sbatch', ['-N1', '-w', 'n1', '--wait', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', path.join(dir, 'out.txt'), '--wrap', 'srun berth exec -- echo back'], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 120_000 });
    assert.equal(ok.code, 0, `${ok.stderr}${readIfExists(path.join(dir, 'out.txt'))}`);
    assert.match(readIfExists(path.join(dir, 'out.txt')), /^back$/m);
  });
});
