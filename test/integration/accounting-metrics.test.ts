// Accounting and metrics with the agent's services built in-process against sandbox node
// n1's real dockerd and registry, under a node name of their own ('acct-itest'): a job
// container's records (digest, pull bytes and time, start latency, CPU and memory from its
// cgroup), QueryAccounting over the real gRPC sockets with filters, users limited to their
// own records, rotation under many appends through the RPC, and /metrics over HTTP.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import { DrainStore } from '../../services/agent/admin/drain-store';
import { listManagedContainers } from '../../services/agent/admin/managed-containers';
import type { AccountingRecord } from '../../services/agent/accounting/accounting-record';
import { CallerAuthenticator } from '../../services/agent/auth/caller';
import { loadConfig } from '../../services/agent/config';
import { ImageUserFilesCache } from '../../services/agent/containers/image-user-files';
import { LABEL } from '../../services/agent/containers/labels';
import { nodeMemlock } from '../../services/agent/containers/memlock';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { ImageCache } from '../../services/agent/housekeeping/image-cache';
import { NssIdentityResolver } from '../../services/agent/identity/nss';
import { ImageService } from '../../services/agent/images/image-service';
import { FileImageUseLog } from '../../services/agent/images/image-use-log';
import { jobParts } from '../support/job-parts';
import { JobTable } from '../../services/agent/jobs/job-table';
import { Lifecycle } from '../../services/agent/lifecycle';
import { silentLogger } from '../../services/agent/logger';
import { AgentMetrics } from '../../services/agent/metrics/agent-metrics';
import { startMetricsServer, type MetricsServer } from '../../services/agent/metrics/metrics-server';
import { startServers, type BoundServers } from '../../services/agent/server/grpc-servers';
import { StepRunner } from '../../services/agent/steps/step-runner';
import { runAccounting } from '../../services/cli/accounting';
import { connect } from '../../services/cli/agent-client';
import type { QueryAccountingBatch__Output } from '../../services/shared/gen/berth/v1/QueryAccountingBatch';
import { mungePayload } from '../../services/shared/munge';
import { MUNGE_METADATA_KEY } from '../../services/shared/proto-names';
import { agentSockets } from '../../services/shared/paths';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { pushAsSite } from '../support/images';
import { node, sandbox, uidOf } from '../support/stack';
import { record } from '../unit/fakes/accounting-records';

const NODE = 'acct-itest';
const REPO_NAME = `127.0.0.1:5000/berth/acct-itest`;

describe('accounting and metrics on a real engine', { timeout: 180_000 }, () => {
  const n1 = node('n1');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-acct-itest-'));
  const runDir = path.join(dir, 'run');
  const docker = (...args: string[]): string => execFileSync('docker', ['-H', `unix://${n1.dockerSocket}`, ...args], { encoding: 'utf8' }).trim();
  const config = loadConfig(undefined, {
    node: NODE, stateDir: path.join(dir, 'state'), accountingFile: path.join(dir, 'acct.jsonl'), runDir,
    dockerHost: `unix://${n1.dockerSocket}`, initBinary: '/usr/local/lib/berth/berth-init', stopGraceSeconds: 2,
    accountingRotation: { maxBytes: 64 * 1024, keep: 200 },
  });
  const log = silentLogger();
  const engine = new DockerodeEngine(n1.dockerSocket);
  const metrics = new AgentMetrics(NODE);
  const images = new ImageService(engine, new RegistryClient(), { timeoutMs: 60_000, inactivityMs: 30_000 }, log, {}, undefined, undefined, metrics);
  const accounting = new AccountingLog(config.accountingFile, config.accountingRotation);
  const { jobs, ledger } = jobParts({
    config, engine, images, imageUserFiles: new ImageUserFilesCache(engine, NODE), identities: new NssIdentityResolver(), table: new JobTable(config.stateDir),
    accounting, log, memlockBytes: nodeMemlock(-1).bytes, usage: engine, metrics,
  });
  const steps = new StepRunner(engine, ledger, log);
  const alice = uidOf('alice');
  const bob = uidOf('bob');
  let image = '';
  let work = '';
  let servers: BoundServers | undefined;
  let metricsServer: MetricsServer | undefined;
  const envBefore = process.env.BERTH_RUN_DIR;

  before(async () => {
    // an image of this test's own with a fresh 512 KiB layer, pushed and then removed here, so
    // that the prologue really pulls it without touching the images other tests use
    const tag = `${REPO_NAME}:${Date.now()}`;
    const ctx = mkdtempSync(path.join(os.tmpdir(), 'berth-acct-img-'));
    writeFileSync(path.join(ctx, 'payload.bin'), Buffer.from(Array.from({ length: 512 * 1024 }, () => Math.floor(Math.random() * 256))));
    docker('pull', '-q', sandbox().demoImage);
    const c = docker('create', '--network', 'none', sandbox().demoImage, 'true');
    docker('cp', path.join(ctx, 'payload.bin'), `${c}:/payload.bin`);
    docker('commit', c, tag);
    docker('rm', c);
    pushAsSite(n1.dockerSocket, tag);
    docker('rmi', tag);
    image = tag;
    work = mkdtempSync(path.join(os.tmpdir(), 'berth-acct-work-'));
    chownSync(work, alice, alice);
    const lifecycle = new Lifecycle();
    // munge is stood in for: the user socket's caller is whoever the test says (alice)
    const auth = new CallerAuthenticator({ verify: async (cred: string) => ({ uid: Number(cred.split(':')[0]), gid: Number(cred.split(':')[0]), encodeTime: new Date(), payload: cred.slice(cred.indexOf(':') + 1) }) });
    const imageCache = new ImageCache(engine, new FileImageUseLog(config.stateDir), ImageCache.diskOf(() => engine.dataRoot()), { highPercent: 90, lowPercent: 80, minAgeMs: 0, dryRun: true }, log);
    servers = await startServers(runDir, {
      jobs, steps, auth, identities: new NssIdentityResolver(), node: NODE, stopGraceMs: 1000, lifecycle, log, imageCache, images, accounting, metrics,
      drain: new DrainStore(config.stateDir),
      containers: () => listManagedContainers(engine, NODE, jobs.list()),
      status: () => Promise.reject(new Error('GetStatus is not part of this test')),
    }, lifecycle);
    lifecycle.set('serving');
    metrics.watch({
      jobsRunning: () => jobs.list().filter((j) => j.state === 'RUNNING').length,
      containersRunning: async () => (await engine.listByLabel(LABEL.node, NODE)).filter((x) => x.state === 'running').length,
      imageCacheBytes: async () => (await engine.listImages()).reduce((s, i) => s + i.sizeBytes, 0),
    });
    metricsServer = await startMetricsServer(metrics, '127.0.0.1:0', () => undefined);
    process.env.BERTH_RUN_DIR = runDir;
  });

  after(async () => {
    await jobs.epilogue('910001').catch(() => undefined);
    await servers?.shutdown(1000);
    await metricsServer?.close();
    if (envBefore === undefined) delete process.env.BERTH_RUN_DIR;
    else process.env.BERTH_RUN_DIR = envBefore;
    // the prologue pulled it by digest: remove it by its id, whatever names it has
    try {
      if (jobRec) execFileSync('docker', ['-H', `unix://${n1.dockerSocket}`, 'rmi', '-f', jobRec.ImageDigest], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  });

  let jobRec: AccountingRecord;
  let stepRecs: AccountingRecord[];
  let metricsBefore = '';

  it("accounts a real job: digest, the pull's bytes and time, start latency, the container's CPU and memory", async (t) => {
    metricsBefore = await (await fetch(`http://${metricsServer!.address}/metrics`)).text();
    const began = new Date().toISOString();
    const res = await jobs.prologue({ jobId: '910001', uid: alice, gid: alice, user: 'alice', image, workDir: work, cpus: 1, memoryBytes: 256 << 20, account: 'acct-physics' });
    assert.equal(res.alreadyPrepared, false);
    const job = jobs.get('910001')!;
    // a step that burns about a second of CPU and holds ~16 MB
    const { step } = await steps.start(job, {
      stepId: '0', taskId: 0, cwd: '/', env: [], tty: false,
      argv: ['sh', '-c', 'x=$(head -c 16000000 /dev/zero | tr "\\0" a); i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo ${#x}'],
    }, { name: 'alice', home: '/' }, { stdout: () => undefined, stderr: () => undefined });
    step.closeStdin();
    const outcome = await step.done;
    assert.equal(outcome.exitCode, 0);
    const { step: failing } = await steps.start(job, { stepId: '1', taskId: 0, cwd: '/', env: [], tty: false, argv: ['sh', '-c', 'exit 3'] },
      { name: 'alice', home: '/' }, { stdout: () => undefined, stderr: () => undefined });
    failing.closeStdin();
    await failing.done;
    await jobs.epilogue('910001');
    const mine = (await rpcQuery({ jobId: '910001' })).filter((r) => r.Start >= began);
    jobRec = mine.find((r) => r.RecordType === 'job')!;
    stepRecs = mine.filter((r) => r.RecordType === 'step');
    assert.ok(jobRec, JSON.stringify(mine));
    t.diagnostic(`job: pull ${jobRec.PullBytes} B in ${jobRec.PullSeconds} s, start ${jobRec.StartLatencySeconds} s, CPU ${jobRec.TotalCPUSeconds} s, peak ${jobRec.MaxRSSBytes} B (${jobRec.UsageSource})`);
    assert.match(jobRec.ImageDigest, new RegExp(`^${REPO_NAME.replace(/\./g, '\\.')}@sha256:[a-f0-9]{64}$`));
    assert.equal(jobRec.Image, image);
    assert.equal(jobRec.Registry, '127.0.0.1:5000');
    assert.equal(jobRec.Account, 'acct-physics');
    assert.equal(jobRec.UID, alice);
    assert.equal(jobRec.NodeList, NODE);
    assert.equal(jobRec.Pulled, true);
    assert.ok(jobRec.PullBytes! >= 400 * 1024, `the new layer's bytes were counted: ${jobRec.PullBytes}`);
    assert.ok(jobRec.PullSeconds! > 0, `pull time ${jobRec.PullSeconds}`);
    assert.ok(jobRec.StartLatencySeconds! > 0 && jobRec.StartLatencySeconds! < 30, `start latency ${jobRec.StartLatencySeconds}`);
    assert.ok(jobRec.Mounts.some((m) => m.Source === work && m.Target === work && !m.ReadOnly), JSON.stringify(jobRec.Mounts));
    assert.match(jobRec.UsageSource, /^(cgroup-v1|cgroup-v2|docker-stats)$/);
    assert.ok(jobRec.TotalCPUSeconds! >= 0.2, `job CPU ${jobRec.TotalCPUSeconds} s`);
    assert.ok(jobRec.MaxRSSBytes! >= 16_000_000, `job memory peak ${jobRec.MaxRSSBytes} B`);
    assert.equal(jobRec.State, 'FAILED');
    assert.equal(jobRec.ExitCode, '3:0');
    assert.ok(jobRec.ElapsedSeconds > 0);
    assert.deepEqual(stepRecs.map((s) => [s.StepID, s.State, s.ExitCode]), [['0', 'COMPLETED', '0:0'], ['1', 'FAILED', '3:0']]);
    assert.ok(stepRecs[0]!.TotalCPUSeconds! >= 0.2, `step 0 CPU ${stepRecs[0]!.TotalCPUSeconds} s`);
    assert.ok(stepRecs[0]!.TotalCPUSeconds! <= jobRec.TotalCPUSeconds!);
    assert.ok(stepRecs[0]!.MaxRSSBytes! >= 16_000_000);
    assert.equal(stepRecs[0]!.ImageDigest, jobRec.ImageDigest);
  });

  it('QueryAccounting filters by job, user and time over the socket; the CLI merges and reports an unreachable node', async () => {
    const t = (s: string) => `2020-01-0${s}T00:00:00.000Z`;
    accounting.append([record({ JobID: '7001', User: 'bob', UID: bob, NodeList: NODE, Start: t('1'), End: t('2') })]);
    accounting.append([record({ JobID: '7002', User: 'alice', UID: alice, NodeList: NODE, Start: t('3'), End: t('4') })]);
    assert.deepEqual((await rpcQuery({ since: t('2'), until: t('3') })).map((r) => r.JobID), ['7001', '7002']);
    assert.deepEqual((await rpcQuery({ since: t('2'), until: t('2') })).map((r) => r.JobID), ['7001']);
    assert.deepEqual((await rpcQuery({ user: 'bob' })).map((r) => r.JobID), ['7001']);
    assert.deepEqual((await rpcQuery({ uid: alice, until: t('9') })).map((r) => r.JobID), ['7002']);
    let out = '';
    let err = '';
    const code = await runAccounting({ nodes: `${NODE},acct-itest-missing`, format: 'json', since: '2019-12-31', until: '2020-01-05', jobsOnly: true },
      { out: (s) => void (out += s), err: (s) => void (err += s) });
    assert.equal(code, 3, 'partial');
    assert.match(err, /acct-itest-missing: berthd on acct-itest-missing is not reachable/);
    assert.deepEqual((JSON.parse(out) as AccountingRecord[]).map((r) => r.JobID), ['7001', '7002']);
    out = '';
    assert.equal(await runAccounting({ nodes: NODE, format: 'csv', job: '910001', since: '1h' }, { out: (s) => void (out += s), err: (s) => void (err += s) }), 0);
    assert.equal(out.trim().split('\n').length, 4, 'header, the job and its two steps');
    assert.match(out.split('\n')[1]!, /^job,910001,,,alice,/);
  });

  it('a user on the user socket reads only their own records', async () => {
    const asAlice = await rpcQuery({}, 'user', alice);
    assert.ok(asAlice.length >= 2);
    assert.ok(asAlice.every((r) => r.UID === alice), 'only uid ' + alice);
    await assert.rejects(rpcQuery({ uid: bob }, 'user', alice), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED && /only read your own records/.test(e.details));
  });

  it('streams every record across many rotated files, in order, in messages under the limit', async () => {
    const n = 3000;
    for (let i = 0; i < n; i++) accounting.append(record({ JobID: String(800000 + i), NodeList: NODE, Start: '2021-06-01T00:00:00.000Z', End: '2021-06-01T00:01:00.000Z' }));
    let batches = 0;
    const got = await rpcQuery({ since: '2021-05-31T00:00:00Z', until: '2021-06-02T00:00:00Z' }, 'admin', 0, () => batches++);
    assert.equal(got.length, n);
    assert.deepEqual(got.map((r) => Number(r.JobID)), Array.from({ length: n }, (_, i) => 800000 + i));
    assert.ok(batches >= 2, `${batches} messages`);
  });

  it('/metrics shows the pull, the cache miss, the container start and the steps', async () => {
    const res = await fetch(`http://${metricsServer!.address}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const delta = (name: string, labels = '') => value(text, name, labels) - value(metricsBefore, name, labels);
    assert.equal(delta('berth_image_pulls_total'), 1);
    assert.ok(delta('berth_image_pull_bytes_total') >= 400 * 1024);
    assert.equal(delta('berth_image_pull_duration_seconds_count'), 1);
    assert.ok(delta('berth_image_cache_misses_total') >= 1);
    assert.equal(delta('berth_container_start_latency_seconds_count'), 1);
    assert.equal(delta('berth_steps_total', 'state="COMPLETED"'), 1);
    assert.equal(delta('berth_steps_total', 'state="FAILED"'), 1);
    assert.ok(value(text, 'berth_image_cache_size_bytes') > 0);
    assert.equal(value(text, 'berth_jobs_running'), 0);
    assert.ok(value(text, 'process_resident_memory_bytes') > 10e6);
    assert.equal((await fetch(`http://${metricsServer!.address}/other`)).status, 404);
  });

  /** QueryAccounting on the admin socket (root) or the user socket as uid */
  function rpcQuery(req: Partial<{ since: string; until: string; jobId: string; user: string; uid: number; jobsOnly: boolean }>, socket: 'admin' | 'user' = 'admin', uid = 0,
    onBatch?: () => void): Promise<AccountingRecord[]> {
    const sockets = agentSockets(runDir, NODE);
    const client = connect({ node: NODE, socket: socket === 'admin' ? sockets.admin : sockets.user, asRoot: socket === 'admin' });
    const md = new grpc.Metadata();
    if (socket === 'user') md.set(MUNGE_METADATA_KEY, `${uid}:${mungePayload('QueryAccounting', '')}`);
    return new Promise<AccountingRecord[]>((resolve, reject) => {
      const got: AccountingRecord[] = [];
      const call = client.QueryAccounting(req, md);
      call.on('data', (b: QueryAccountingBatch__Output) => {
        onBatch?.();
        for (const t of b.recordsJson) got.push(JSON.parse(t) as AccountingRecord);
      });
      call.on('error', reject);
      call.on('end', () => resolve(got));
    }).finally(() => client.close());
  }
});

function value(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && (labels === '' || l.includes(labels)));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}
