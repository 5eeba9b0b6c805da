// berthd's job lifecycle against the real dockerd and registry of sandbox node n1, with the
// agent's services built in-process under a node name of their own ('itest').
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, chownSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import { loadConfig } from '../../services/agent/config';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { NssIdentityResolver } from '../../services/agent/identity/nss';
import { ImageService } from '../../services/agent/images/image-service';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { jobParts } from '../support/job-parts';
import { JobTable } from '../../services/agent/jobs/job-table';
import { silentLogger } from '../../services/agent/logger';
import { StepRunner } from '../../services/agent/steps/step-runner';
import { nodeMemlock } from '../../services/agent/containers/memlock';
import { ImageUserFilesCache } from '../../services/agent/containers/image-user-files';
import { BerthError } from '../../services/shared/errors';
import { node, REPO, sandbox, uidOf } from '../support/stack';

const NODE = 'itest';

function build() {
  const n1 = node('n1');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-itest-'));
  const config = loadConfig(undefined, {
    node: NODE, stateDir: path.join(dir, 'state'), accountingFile: path.join(dir, 'acct.jsonl'),
    dockerHost: `unix://${n1.dockerSocket}`, initBinary: '/usr/local/lib/berth/berth-init', stopGraceSeconds: 2,
  });
  const log = silentLogger();
  const engine = new DockerodeEngine(n1.dockerSocket);
  const images = new ImageService(engine, new RegistryClient(), { timeoutMs: 60_000, inactivityMs: 30_000 }, log);
  const identities = new NssIdentityResolver();
  const newJobParts = () => jobParts({
    config, engine, images, imageUserFiles: new ImageUserFilesCache(engine, NODE), identities, table: new JobTable(config.stateDir),
    accounting: new AccountingLog(config.accountingFile), log, memlockBytes: nodeMemlock(-1).bytes,
  });
  const newJobService = () => newJobParts().jobs;
  const { jobs, ledger } = newJobParts();
  const steps = new StepRunner(engine, ledger, log);
  return { dir, config, engine, images, jobs, steps, identities, newJobService };
}

async function runStep(h: ReturnType<typeof build>, jobId: string, argv: string[], cwd = '/') {
  const job = h.jobs.get(jobId)!;
  let out = '';
  let err = '';
  const { step } = await h.steps.start(job, { stepId: '0', taskId: 0, argv, cwd, env: ['SLURM_PROCID=0', 'PATH=/evil'], tty: false },
    { name: job.user, home: '/home/' + job.user }, { stdout: (b) => (out += b.toString()), stderr: (b) => (err += b.toString()) });
  step.closeStdin();
  const outcome = await step.done;
  return { out, err, outcome, step };
}

describe('job lifecycle on a real engine', { timeout: 120_000 }, () => {
  const h = build();
  const alice = uidOf('alice');
  let work: string;
  const ids: string[] = [];
  const input = (jobId: string, over: Record<string, unknown> = {}) => {
    ids.push(jobId);
    return { jobId, uid: alice, gid: alice, user: 'alice', image: sandbox().demoImage, workDir: work, cpus: 1, memoryBytes: 256 * 1024 * 1024, ...over };
  };

  before(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'berth-itest-work-'));
    chownSync(work, alice, alice);
  });
  after(async () => {
    for (const id of ids) await h.jobs.epilogue(id).catch(() => undefined);
  });

  it("starts the job container as the job's user with its groups, the image's files and its limits", async () => {
    const res = await h.jobs.prologue(input('900001'));
    assert.match(res.job.imageDigest, /^127\.0\.0\.1:5000\/berth\/demo@sha256:[a-f0-9]{64}$/);
    const r = await runStep(h, '900001', ['sh', '-c', 'id; cat /etc/berth-demo-release; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; hostname; pwd; echo "PATH=$PATH"'], work);
    assert.equal(r.outcome.exitCode, 0, r.err);
    assert.match(r.out, new RegExp(`uid=${alice}\\(alice\\) gid=${alice}\\(alice\\) groups=${alice}\\(alice\\),2100\\(berth-demo\\)`));
    assert.match(r.out, /berth demo image 1\.0/);
    assert.match(r.out, /CapEff:\s+0000000000000000/);
    assert.match(r.out, /NoNewPrivs:\s+1/);
    assert.match(r.out, new RegExp(`^${os.hostname()}$`, 'm'), 'host network: the host name is the node\'s');
    assert.match(r.out, new RegExp(`^${work}$`, 'm'));
    assert.doesNotMatch(r.out, /PATH=\/evil/);
    const inspect = await h.engine.docker.getContainer(res.job.containerId).inspect();
    assert.equal(inspect.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(inspect.HostConfig.NanoCpus, 1_000_000_000);
    assert.equal(inspect.HostConfig.NetworkMode, 'host');
    assert.equal(inspect.HostConfig.Privileged, false);
    assert.equal(inspect.Config.User, `${alice}:${alice}`);
  });

  it('writes into the working directory as the user', async () => {
    const r = await runStep(h, '900001', ['sh', '-c', 'echo data > out.txt'], work);
    assert.equal(r.outcome.exitCode, 0, r.err);
    const st = statSync(path.join(work, 'out.txt'));
    assert.equal(st.uid, alice);
    assert.equal(readFileSync(path.join(work, 'out.txt'), 'utf8'), 'data\n');
  });

  it("returns the command's exit status, and 127 for a command the image lacks", async () => {
    assert.equal((await runStep(h, '900001', ['sh', '-c', 'exit 42'])).outcome.exitCode, 42);
    const missing = await runStep(h, '900001', ['no-such-tool']);
    assert.equal(missing.outcome.exitCode, 127);
    assert.match(missing.err, /no-such-tool: command not found in the container/);
  });

  it('kills the whole process tree of a step when its client goes away', async () => {
    const job = h.jobs.get('900001')!;
    const { step } = await h.steps.start(job, { stepId: '1', taskId: 0, argv: ['sh', '-c', 'sleep 501 & sleep 502 & wait'], cwd: '/', env: [], tty: false },
      { name: 'alice', home: '/' }, { stdout: () => undefined, stderr: () => undefined });
    await new Promise((r) => setTimeout(r, 500));
    const before = await h.engine.docker.getContainer(job.containerId).top({ ps_args: '-o pid,args' });
    assert.equal(before.Processes.filter((p: string[]) => /^sleep 50[12]$/.test(p[1] ?? '')).length, 2);
    step.abort(1000);
    const outcome = await step.done;
    assert.equal(outcome.state, 'KILLED');
    const afterTop = await h.engine.docker.getContainer(job.containerId).top({ ps_args: '-o pid,args' });
    assert.equal(afterTop.Processes.filter((p: string[]) => /^sleep 50[12]$/.test(p[1] ?? '')).length, 0);
  });

  it('recovers the job from the container labels after an agent restart', async () => {
    const fresh = h.newJobService();
    await fresh.recover();
    const job = fresh.get('900001')!;
    assert.equal(job.state, 'RUNNING');
    assert.equal(job.user, 'alice');
    assert.ok(job.steps.length >= 4);
  });

  it('ends the job: no container left, a job accounting record and one per step', async () => {
    const containerId = h.jobs.get('900001')!.containerId;
    const res = await h.jobs.epilogue('900001');
    assert.equal(res.containersRemoved, 1);
    assert.equal(await h.engine.inspect(containerId), undefined);
    const recs = readFileSync(h.config.accountingFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const rec = recs.find((r) => r.JobID === '900001' && r.RecordType === 'job');
    assert.ok(rec);
    assert.equal(rec.UID, alice);
    assert.match(rec.ImageDigest, /@sha256:/);
    assert.ok(recs.filter((r) => r.JobID === '900001' && r.RecordType === 'step').length >= 4);
    assert.deepEqual(await h.jobs.epilogue('900001'), { containersRemoved: 0, wasKnown: false });
  });

  it('pulls an uncached image once for 16 concurrent prologues: each blob fetched once from the registry', async () => {
    const digestRef = (await h.images.ensure(sandbox().demoImage)).digestRef;
    // remove the image itself (by id), not just this reference: any other tag would keep its layers
    const { Id } = await h.engine.docker.getImage(digestRef).inspect();
    await h.engine.docker.getImage(Id).remove({ force: true });
    const logFile = sandbox().registry.log;
    const start = statSync(logFile).size;
    const jobIdsHere = Array.from({ length: 16 }, (_, i) => String(900011 + i));
    const results = await Promise.all(jobIdsHere.map((id) => h.jobs.prologue(input(id))));
    assert.equal(new Set(results.map((r) => r.job.imageDigest)).size, 1);
    await new Promise((r) => setTimeout(r, 300)); // let the registry flush its log
    const fresh = readFileSync(logFile).subarray(start).toString();
    const blobGets = [...fresh.matchAll(/"GET \/v2\/berth\/demo\/blobs\/(sha256:[a-f0-9]{64}) HTTP/g)].map((m) => m[1]);
    assert.ok(blobGets.length > 0, 'the registry log shows the blob fetches');
    assert.equal(blobGets.length, new Set(blobGets).size, `each blob fetched once: ${blobGets.join(' ')}`);
    for (const id of jobIdsHere) await h.jobs.epilogue(id);
  });

  it('refuses a missing image, a malformed reference and a dead registry, leaving no container', async () => {
    await assert.rejects(h.jobs.prologue(input('900021', { image: '127.0.0.1:5000/berth/no-such-image:1' })),
      (e: unknown) => e instanceof BerthError && e.code === 'IMAGE_NOT_FOUND' && /127\.0\.0\.1:5000\/berth\/no-such-image:1/.test(e.message));
    await assert.rejects(h.jobs.prologue(input('900022', { image: '127.0.0.1:5000/Berth/Demo' })), (e: unknown) => e instanceof BerthError && e.code === 'INVALID_IMAGE_REFERENCE');
    await assert.rejects(h.jobs.prologue(input('900023', { image: '127.0.0.1:5999/berth/demo:1.0' })),
      (e: unknown) => e instanceof BerthError && e.code === 'REGISTRY_UNAVAILABLE' && /registry 127\.0\.0\.1:5999 could not be reached/.test(e.message));
    await assert.rejects(h.jobs.prologue(input('900024', { uid: 0, gid: 0, user: 'root' })), (e: unknown) => e instanceof BerthError && e.code === 'ROOT_JOB_REFUSED');
    const left = await h.engine.listByLabel('io.berth.node', NODE);
    assert.deepEqual(left.filter((c) => ['900021', '900022', '900023', '900024'].includes(c.labels['io.berth.job.id'] ?? '')), []);
  });

  it('fails a job cancelled during its prolog as the job\'s own end, not the node\'s, leaving no container', async () => {
    // Slurm's EndTime of a job scancelled while its prolog pulled: already past when the
    // container is ready; the job's Docker certificate would be born expired (certs/node-ca.ts)
    const ended = new Date(Date.now() - 2000);
    let revoked = '';
    const { jobs } = jobParts({
      config: h.config, engine: h.engine, images: h.images, imageUserFiles: new ImageUserFilesCache(h.engine, NODE), identities: h.identities,
      table: new JobTable(h.config.stateDir), accounting: new AccountingLog(h.config.accountingFile), log: silentLogger(), memlockBytes: nodeMemlock(-1).bytes,
      allocations: { allocation: async () => ({ cpus: 1, memoryBytes: 256 * 1024 * 1024, endTime: ended }) },
      dockerAccess: {
        grant: async (job, notAfter) => {
          if (notAfter.getTime() <= Date.now()) throw new BerthError('JOB_NOT_RUNNING', `Docker client certificate for job ${job.jobId}: the job's end is already past`);
        },
        revoke: (jobId) => { revoked = jobId; },
      },
    });
    await assert.rejects(jobs.prologue(input('900031')), (e: unknown) => e instanceof BerthError && e.code === 'JOB_NOT_RUNNING' && e.fault === 'job'
      && /job 900031 ended \(.+\) before its container was ready on .+: it was cancelled or ran out of time during its prolog/.test(e.message));
    assert.equal(revoked, '900031');
    const left = await h.engine.listByLabel('io.berth.job.id', '900031');
    assert.deepEqual(left, [], 'no half-made container');
  });
});

describe('hooks when berthd is not running', () => {
  it('wait for berthd for their retry window, then say it is not reachable and how long they tried', () => {
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'berth-nodaemon-'));
    const began = Date.now();
    let stderr = '';
    let code = 0;
    try {
      execFileSync(process.execPath, [path.join(REPO, 'dist/berth.js'), 'hook', 'prolog'], {
        env: { PATH: '/usr/bin:/bin', BERTH_RUN_DIR: runDir, BERTH_HOOK_RETRY_SECONDS: '2', SLURM_JOB_ID: '5', SLURM_JOB_UID: '2001', SLURM_JOB_GID: '2001', SLURM_JOB_USER: 'alice', SLURMD_NODENAME: 'n9', SPANK_BERTH_CONTAINER_IMAGE: 'reg:5000/x:1' },
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      code = (err as { status: number }).status;
      stderr = (err as { stderr: string }).stderr;
    }
    const took = Date.now() - began;
    assert.equal(code, 1);
    assert.match(stderr, /berth prolog: job 5 on n9, image 'reg:5000\/x:1': berthd on n9 is not reachable at .*admin\.sock \(.*; tried \d+ times over 1\.\d s\)/);
    assert.ok(took > 1000 && took < 5000, `gave up after ${took} ms (window 2 s)`);
  });

  it('refuses a bad command line with exit 2, a reason and where to get help, running nothing', () => {
    for (const args of [['hook'], ['hook', 'preamble'], ['nonsense'], ['job']]) {
      let code = 0;
      let stderr = '';
      try {
        execFileSync(process.execPath, [path.join(REPO, 'dist/berth.js'), ...args], { env: { SLURM_JOB_ID: '7', SPANK_BERTH_CONTAINER_IMAGE: 'x' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        code = (err as { status: number }).status;
        stderr = (err as { stderr: string }).stderr;
      }
      assert.equal(code, 2, args.join(' '));
      assert.match(stderr, /^berth: [\s\S]+\nRun 'berth --help', or 'berth COMMAND --help', for usage\.\n$/, args.join(' '));
    }
  });

  it('returns at once for a job without a container', () => {
    const out = execFileSync(process.execPath, [path.join(REPO, 'dist/berth.js'), 'hook', 'prolog'], { env: { SLURM_JOB_ID: '6' }, encoding: 'utf8' });
    assert.equal(out, '');
  });
});
