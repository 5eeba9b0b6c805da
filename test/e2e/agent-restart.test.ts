// Fault drills (issue 12): berthd killed or stopped at the worst moments of a job's life, and
// started again as systemd's Restart=always would, a second later. Each drill ends with the
// same invariants (test/support/invariants.ts): no container of an ended job on any engine,
// each job's accounting record on each node it ran on exactly once, no node drained.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BerthdLog, ensureBerthd, sleep, startBerthd, stopBerthd, until, waitServing } from '../support/berthd';
import { forgetImage, pushPaddedImage } from '../support/images';
import { assertDrillInvariants, jobFields, jobRecordsOn } from '../support/invariants';
import { containersOfJob, jobDir, jobIdFrom, readIfExists, resumeNodes, run, writeScript } from '../support/slurm';
import { node, sandbox } from '../support/stack';

const NODES = ['n1', 'n2', 'n3'];
const PADDED_REPO = '127.0.0.1:5000/berth/drill-padded';
const PADDED = `${PADDED_REPO}:1`;
/** systemd's Restart=always with RestartSec=1 */
const RESTART_AFTER_MS = 1000;

function sbatch(args: string[], dir: string): string {
  const sub = run('sbatch', ['--parsable', ...args], { user: 'alice', cwd: dir });
  assert.equal(sub.code, 0, `sbatch failed: ${sub.stderr}`);
  return jobIdFrom(`Submitted batch job ${sub.stdout.trim().split(';')[0]}`);
}

/** the node's docker events for containers of one job, as JSON objects, from now on */
function dockerEvents(n: string, jobId: string): { events: Record<string, unknown>[]; stop: () => void } {
  const events: Record<string, unknown>[] = [];
  const child: ChildProcess = spawn('docker', ['-H', `unix://${node(n).dockerSocket}`, 'events', '--format', '{{json .}}',
    '--filter', 'type=container', '--filter', `label=io.berth.job.id=${jobId}`], { stdio: ['ignore', 'pipe', 'ignore'] });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      events.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  return { events, stop: () => void child.kill() };
}

const at = (l: { timestamp: string } | undefined): number => (l ? Date.parse(l.timestamp) : NaN);
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

describe('fault drills: berthd killed or stopped under a job', { timeout: 240_000 }, () => {
  const cancel: string[] = [];
  before(() => {
    sandbox();
    resumeNodes();
  });
  after(async () => {
    for (const id of cancel) run('scancel', [id]);
    await ensureBerthd(NODES);
    resumeNodes();
  });

  it('(a) berthd killed during the prolog\'s pull and started a second later: the job runs, only later', async (t) => {
    const digest = await pushPaddedImage(PADDED, 96);
    forgetImage(node('n2').dockerSocket, PADDED_REPO);
    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-pull');
    const out = path.join(dir, 'out.txt');
    const log = new BerthdLog('n2');
    const jobId = sbatch(['-N1', '-w', 'n2', '--no-container-batch', `--container-image=${PADDED}`, '-o', out, '--wrap', 'srun berth exec -- cat /etc/padded-release'], dir);
    cancel.push(jobId);
    const pulling = await until('n2\'s berthd pulling the image', () => log.find((l) => l.message === 'pulling image' && l.image === digest), 60_000, 10);
    await sleep(150);
    const killedAt = await stopBerthd('n2', 'SIGKILL');
    assert.equal(log.find((l) => l.message === 'pulled image' && l.image === digest), undefined, 'berthd was killed before the pull ended');
    await sleep(RESTART_AFTER_MS);
    const startedAt = Date.now();
    startBerthd('n2');
    await waitServing('n2');
    const made = await until(`job ${jobId}'s container started`, () => log.find((l) => l.message === 'job container started' && l.job === jobId), 90_000, 100);
    const served = log.lines().filter((l) => l.message === 'berthd serving').pop();
    t.diagnostic(`pull began ${secs(killedAt - at(pulling))} before the kill; berthd serving ${secs(at(served) - startedAt)} after its start; `
      + `the prolog's container started ${secs(at(made) - killedAt)} after the kill (its second pull took ${secs(Number(made.pullMillis ?? 0))})`);
    assertDrillInvariants([{ jobId, nodes: ['n2'], since, state: 'COMPLETED' }]);
    assert.match(readIfExists(out), /padded 96 MB/);
  });

  it('(b) berthd killed between the container\'s create and start: the prolog is made again, the job runs', async (t) => {
    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-create');
    const out = path.join(dir, 'out.txt');
    const log = new BerthdLog('n3');
    const jobId = sbatch(['-N1', '-w', 'n3', '--hold', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, '--wrap', 'srun berth exec -- cat /etc/berth-demo-release'], dir);
    cancel.push(jobId);
    const ev = dockerEvents('n3', jobId);
    try {
      await sleep(300); // the stream is open
      assert.equal(run('scontrol', ['release', jobId]).code, 0);
      await until(`job ${jobId}'s container created on n3`, () => ev.events.some((e) => e.Action === 'create'), 60_000, 5);
      const killedAt = await stopBerthd('n3', 'SIGKILL');
      assert.equal(log.find((l) => l.message === 'job container started' && l.job === jobId), undefined, 'berthd was killed before the prologue ended');
      await sleep(RESTART_AFTER_MS);
      startBerthd('n3');
      await waitServing('n3');
      const made = await until(`job ${jobId}'s container started`, () => log.find((l) => l.message === 'job container started' && l.job === jobId), 60_000, 100);
      t.diagnostic(`the kill came after docker's ${ev.events.map((e) => e.Action).join(', ')}; the prolog's container started ${secs(at(made) - killedAt)} after the kill`);
      assert.ok(log.find((l) => /its prologue was cut off/.test(l.message) && l.job === jobId), 'recovery saw the half-made container');
    } finally {
      ev.stop();
    }
    assertDrillInvariants([{ jobId, nodes: ['n3'], since, state: 'COMPLETED' }]);
    assert.match(readIfExists(out), /berth demo image 1\.0/);
  });

  it('(c) berthd killed during the epilog: the epilog rides it out, the job is accounted once', async (t) => {
    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-epilog');
    const out = path.join(dir, 'out.txt');
    const log = new BerthdLog('n1');
    const script = writeScript(dir, 'job.sh', 'srun berth exec -- cat /etc/berth-demo-release', 'alice');
    const jobId = sbatch(['-N1', '-w', 'n1', '--hold', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, script], dir);
    cancel.push(jobId);
    const ev = dockerEvents('n1', jobId);
    try {
      await sleep(300);
      assert.equal(run('scontrol', ['release', jobId]).code, 0);
      // the epilogue stops the job container: dockerd's kill event, then berthd waits for the stop and removes it
      await until(`job ${jobId}'s container stopped by the epilogue`, () => ev.events.some((e) => e.Action === 'kill'), 90_000, 5);
      const killedAt = await stopBerthd('n1', 'SIGKILL');
      assert.equal(log.find((l) => l.message === 'job ended' && l.job === jobId), undefined, 'berthd was killed before the epilogue ended');
      await sleep(RESTART_AFTER_MS);
      startBerthd('n1');
      await waitServing('n1');
      const ended = await until(`job ${jobId} ended on n1`, () => log.find((l) => l.message === 'job ended' && l.job === jobId), 60_000, 100);
      t.diagnostic(`the kill came after docker's ${ev.events.map((e) => e.Action).join(', ')}; the epilogue ended ${secs(at(ended) - killedAt)} after the kill`);
    } finally {
      ev.stop();
    }
    assertDrillInvariants([{ jobId, nodes: ['n1'], since, state: 'COMPLETED' }]);
    const [rec] = jobRecordsOn('n1', { jobId, since });
    assert.equal(rec!.SettledLate, false, 'the epilog itself ended the job, through the restart');
    assert.equal(rec!.State, 'COMPLETED');
  });

  it('(d) berthd down across two jobs\' ends: the epilogs spool and exit 0; started again, berthd ends both at once (one from the spool, one by asking Slurm)', async (t) => {
    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-down');
    const script = writeScript(dir, 'job.sh', 'srun berth exec -- echo started\nsleep 300', 'alice');
    const jobs = { n1: '', n2: '' };
    for (const n of ['n1', 'n2'] as const) {
      jobs[n] = sbatch(['-N1', '-w', n, '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', path.join(dir, `${n}.txt`), script], dir);
      cancel.push(jobs[n]);
    }
    for (const n of ['n1', 'n2'] as const) await until(`job ${jobs[n]} started on ${n}`, () => /started/.test(readIfExists(path.join(dir, `${n}.txt`))), 60_000, 100);
    const logs = { n1: new BerthdLog('n1'), n2: new BerthdLog('n2') };
    await stopBerthd('n1', 'SIGKILL'); // a crash
    await stopBerthd('n2', 'SIGTERM'); // an admin's stop
    const cancelledAt = Date.now();
    for (const n of ['n1', 'n2'] as const) assert.equal(run('scancel', [jobs[n]]).code, 0);
    const spool = (n: string, jobId: string) => `/run/berth/${n}/epilog-spool/${jobId}.json`;
    await until('both epilogs spooled', () => existsSync(spool('n1', jobs.n1)) && existsSync(spool('n2', jobs.n2)), 100_000, 200);
    const spooledAfter = Date.now() - cancelledAt;
    const spooled = JSON.parse(readFileSync(spool('n1', jobs.n1), 'utf8')) as { time: string; reason: string };
    // n2's record is lost, as a reboot would lose /run: berthd must ask Slurm instead
    rmSync(spool('n2', jobs.n2));
    await until('Slurm done with both jobs (the epilogs exited 0)', () => ['n1', 'n2'].every((n) => !/COMPLETING|RUNNING/.test(jobFields(jobs[n as 'n1']).JobState ?? '')), 30_000, 200);
    for (const n of ['n1', 'n2'] as const) startBerthd(n);
    const servedAt = { n1: await waitServing('n1'), n2: await waitServing('n2') };
    // at once: before berthd serves, not after the periodic sweep
    for (const n of ['n1', 'n2'] as const) assert.deepEqual(containersOfJob(n, jobs[n]), [], `job ${jobs[n]}'s container gone from ${n} as soon as berthd serves`);
    const settled = logs.n1.find((l) => l.message === 'ended a job whose epilog could not reach berthd' && l.job === jobs.n1);
    const asked = logs.n2.find((l) => l.message === 'ended a job Slurm no longer runs on this node (found at start)' && l.job === jobs.n2);
    assert.ok(settled, 'n1 settled the spooled epilog');
    assert.ok(asked, 'n2 asked Slurm');
    t.diagnostic(`epilogs gave up and spooled ${secs(spooledAfter)} after scancel (${spooled.reason}); the jobs' containers were gone `
      + `${secs(servedAt.n1 - at(settled))} and ${secs(servedAt.n2 - at(asked))} before each berthd answered as serving`);
    assertDrillInvariants(['n1', 'n2'].map((n) => ({ jobId: jobs[n as 'n1'], nodes: [n], since, state: 'CANCELLED' })));
    const n1 = jobRecordsOn('n1', { jobId: jobs.n1, since })[0]!;
    const n2 = jobRecordsOn('n2', { jobId: jobs.n2, since })[0]!;
    assert.equal(n1.SettledLate, true);
    assert.equal(n1.End, spooled.time, 'the job ended when its epilog ran, not when berthd came back');
    assert.equal(n2.SettledLate, true);
  });
});
