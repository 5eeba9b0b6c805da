// Steps under Slurm: a dead client's step is killed in the container; the user socket takes
// only fresh, unreplayed munge credentials made for the call; admins see the job.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { after, describe, it } from 'node:test';
import { connect, unaryCall } from '../../services/cli/agent-client';
import { mungePayload } from '../../services/shared/munge';
import { MUNGE_METADATA_KEY } from '../../services/shared/proto-names';
import { serviceDefinition } from '../../services/shared/service-definition';
import { node, sandbox } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, jobNodes, jobState, run, waitFor } from '../support/slurm';

function runningJob(dir: string, script: string): { jobId: string; nodeName: string; container: string } {
  const sub = run('sbatch', ['-N1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', `${dir}/out.txt`, '--wrap', script], { user: 'alice', cwd: dir });
  assert.equal(sub.code, 0, sub.stderr);
  const jobId = jobIdFrom(sub.stdout);
  waitFor(`job ${jobId} running`, () => jobState(jobId) === 'RUNNING' || undefined);
  const nodeName = jobNodes(jobId);
  const [container] = waitFor(`container of job ${jobId}`, () => {
    const ids = containersOfJob(nodeName, jobId, 'running');
    return ids.length ? ids : undefined;
  });
  return { jobId, nodeName, container: container! };
}

function processesIn(nodeName: string, container: string): string {
  return run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, 'top', container, '-o', 'pid,args']).stdout;
}

describe('steps and authentication through Slurm', { timeout: 180_000 }, () => {
  const cancel: string[] = [];
  after(() => {
    for (const id of cancel) run('scancel', [id]);
  });

  it('kills the step in the container when its berth exec client dies, while the job goes on', () => {
    const dir = jobDir('alice', 'client-dies');
    const { jobId, nodeName, container } = runningJob(dir, 'srun berth exec -- sh -c "sleep 301 & sleep 302"; sleep 120');
    cancel.push(jobId);
    waitFor('the step running in the container', () => /sleep 30[12]/.test(processesIn(nodeName, container)) || undefined);
    const pids = run('pgrep', ['-u', 'alice', '-f', 'berth.js exec -- sh -c sleep 301']).stdout.trim().split('\n').filter(Boolean);
    assert.ok(pids.length >= 1, 'found the berth exec client');
    for (const pid of pids) run('kill', ['-KILL', pid]);
    waitFor('the step gone from the container', () => !/sleep 30[12]/.test(processesIn(nodeName, container)) || undefined, 20_000);
    assert.equal(jobState(jobId), 'RUNNING', 'the job itself goes on');
    assert.match(processesIn(nodeName, container), /\/\.berth\/init pause/);
  });

  it('shows the job to admins with berth jobs and berth job', () => {
    const dir = jobDir('alice', 'admin-view');
    const { jobId, nodeName } = runningJob(dir, 'sleep 120');
    cancel.push(jobId);
    const list = run('berth', ['jobs', '--node', nodeName, '--json']);
    assert.equal(list.code, 0, list.stderr);
    const job = (JSON.parse(list.stdout) as { nodes: { result: { jobs: { jobId: string; user: string; state: string; imageDigest: string }[] } }[] }).nodes[0]!.result.jobs.find((j) => j.jobId === jobId);
    assert.ok(job, list.stdout);
    assert.equal(job.user, 'alice');
    assert.equal(job.state, 'JOB_STATE_RUNNING');
    const human = run('berth', ['job', jobId, '--node', nodeName]);
    assert.match(human.stdout, new RegExp(`job ${jobId} on ${nodeName}: RUNNING`));
    assert.match(human.stdout, /digest +127\.0\.0\.1:5000\/berth\/demo@sha256:/);
    const images = (JSON.parse(run('berth', ['images', '--node', nodeName, '--json']).stdout) as { nodes: { result: { images: { repoDigests: string[]; inUse: boolean; lastUsed: string }[] } }[] }).nodes[0]!.result;
    const mine = images.images.find((i) => i.repoDigests.includes(job.imageDigest));
    assert.ok(mine, `berth images lists ${job.imageDigest}`);
    assert.equal(mine.inUse, true);
    assert.notEqual(mine.lastUsed, '');
    const prune = (JSON.parse(run('berth', ['prune', '--node', nodeName, '--all', '--dry-run', '--json']).stdout) as { nodes: { result: { removed: { repoDigests: string[] }[] } }[] }).nodes[0]!.result;
    assert.ok(!prune.removed.some((i) => i.repoDigests.includes(job.imageDigest)), 'a running job\'s image is never pruned');
    const userImages = run('berth', ['images', '--node', nodeName], { user: 'bob', env: { PATH: '/usr/local/bin:/usr/bin:/bin' } });
    assert.equal(userImages.code, 1);
    assert.match(userImages.stderr, /ListImages is for root only/);
    const bobs = run('berth', ['jobs', '--node', nodeName, '--json'], { user: 'bob', env: { PATH: '/usr/local/bin:/usr/bin:/bin' } });
    assert.equal(bobs.code, 0, bobs.stderr);
    assert.ok(!(JSON.parse(bobs.stdout) as { nodes: { result: { jobs: { jobId: string }[] } }[] }).nodes[0]!.result.jobs.some((j) => j.jobId === jobId), 'bob does not see alice\'s job');
  });

  it('answers grpc.health.v1 Check with SERVING on both sockets', async () => {
    const Health = grpc.makeGenericClientConstructor(serviceDefinition('grpc.health.v1.Health'), 'Health');
    for (const socket of [node('n1').berthdAdminSocket, node('n1').berthdUserSocket]) {
      const client = new Health(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
        Check: (req: object, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void) => void;
      };
      for (const service of ['', 'berth.v1.NodeAgentService']) {
        const res = await new Promise<{ status: string }>((resolve, reject) => client.Check({ service }, (err, r) => (err ? reject(err) : resolve(r!))));
        assert.equal(res.status, 'SERVING', `${socket} ${service}`);
      }
      await assert.rejects(new Promise((resolve, reject) => client.Check({ service: 'nope' }, (err, r) => (err ? reject(err) : resolve(r)))),
        (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
      client.close();
    }
  });

  it('refuses a replayed credential, one made for another call, and none at all', async () => {
    const n1 = node('n1');
    const target = { node: 'n1', socket: n1.berthdUserSocket, asRoot: false };
    const client = connect(target);
    const call = (cred?: string) => {
      const md = new grpc.Metadata();
      if (cred) md.set(MUNGE_METADATA_KEY, cred);
      return unaryCall(client.ListJobs.bind(client), {}, md, 10_000);
    };
    const cred = execFileSync('runuser', ['-u', 'alice', '--', 'munge', '-s', mungePayload('ListJobs', '')], { encoding: 'utf8' }).trim();
    await call(cred);
    await assert.rejects(call(cred), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED && /Replayed credential/i.test(e.details));
    const other = execFileSync('runuser', ['-u', 'alice', '--', 'munge', '-s', mungePayload('GetJob', '7')], { encoding: 'utf8' }).trim();
    await assert.rejects(call(other), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED && /made for 'berth\.v1\/GetJob:7'/.test(e.details));
    await assert.rejects(call(), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED && /no munge credential sent/.test(e.details));
    client.close();
  });
});
