// Job faults and node faults (shared/fault-class.ts): the table, how engine and pull errors
// are classed, what berthd records and answers for a failed prologue, and what the prolog
// hook does with the answer (exit 0 for the job's fault, drain with berth's reason for the node's).
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { BerthError, ERROR_STATUS } from '../../services/shared/errors';
import { FAULT_METADATA_KEY, FAULTS, faultCause, faultOf } from '../../services/shared/fault-class';
import { containerFailure, agentFailure } from '../../services/agent/docker/engine-errors';
import { JobFaults } from '../../services/agent/jobs/job-faults';
import { JobService } from '../../services/agent/jobs/job-service';
import { toServiceError } from '../../services/agent/server/proto-mapping';
import { makeAgentHandlers, type AgentServiceDeps } from '../../services/agent/server/agent-service';
import { drainReason, hookFailure, inSlurm, scontrolFor } from '../../services/cli/hook-faults';
import { prologFailed } from '../../services/cli/hook';
import { harness, IMAGE, prologueInput } from './fakes/helpers';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const GATE = (p: string) => new Error(`(HTTP code 400) unexpected - failed to create shim task: OCI runtime create failed: berth: the host path ${p} cannot be opened by uid 2001 (Permission denied): a container may mount only what its user can open: unknown`);

/** a harness whose JobService records faults in a directory of its own and tells the user */
function faultHarness() {
  const h = harness();
  const faults = new JobFaults(path.join(h.dir, 'run', 'n1', 'faults'));
  const told: [string, string][] = [];
  const d = (h.jobs as unknown as { d: ConstructorParameters<typeof JobService>[0] }).d;
  const jobs = new JobService({ ...d, faults, tellUser: async (id, text) => void told.push([id, text]) });
  return { ...h, jobs, faults, told };
}

describe('the fault table', () => {
  it('classes every code of the catalogue, and each node fault has a cause for its drain reason', () => {
    assert.deepEqual(Object.keys(FAULTS).sort(), Object.keys(ERROR_STATUS).sort());
    for (const [code, e] of Object.entries(FAULTS)) {
      assert.ok(e.when.length > 10, `${code} says when it happens`);
      if (e.fault === 'node') assert.ok(e.cause && e.cause.length <= 13, `${code}: a node fault's cause fits in sinfo -R's 20 characters after 'berth: '`);
    }
  });

  it("puts the job's own failures on the job and the node's on the node; an unknown code is the node's", () => {
    for (const code of ['OPTIONS_INVALID', 'MOUNT_REFUSED', 'PATH_UNREACHABLE', 'POLICY_DENIED', 'IMAGE_NOT_FOUND', 'IMAGE_ACCESS_DENIED', 'CREDENTIALS_UNSAFE', 'REGISTRY_UNAVAILABLE', 'NAME_CLASH', 'ROOT_JOB_REFUSED']) {
      assert.equal(faultOf(code), 'job', code);
    }
    for (const code of ['ENGINE_UNAVAILABLE', 'ENGINE_FAILED', 'DISK_FULL', 'NODE_CONFIG', 'USER_UNKNOWN', 'AGENT_UNAVAILABLE', 'NODE_DRAINED', 'SITE_CREDENTIALS_INVALID', 'INVALID_REQUEST']) {
      assert.equal(faultOf(code), 'node', code);
    }
    assert.equal(faultOf('SOMETHING_NEW'), 'node');
    assert.equal(faultOf(undefined), 'node');
    assert.equal(faultOf('toString'), 'node', 'not a property of every object');
    assert.equal(faultCause('DISK_FULL'), 'disk full');
    assert.equal(faultCause(undefined), 'prolog failed');
  });

  it('is the table docs/operations.md shows, code for code', () => {
    const doc = readFileSync(path.join(REPO, 'docs/operations.md'), 'utf8');
    const section = doc.slice(doc.indexOf('<!-- fault-table -->'), doc.indexOf('<!-- /fault-table -->'));
    assert.ok(section.length > 100, 'docs/operations.md has the fault table between its markers');
    const rows = new Map([...section.matchAll(/^\| `([A-Z_]+)` \| (job|node) \|/gm)].map((m) => [m[1]!, m[2]!]));
    assert.deepEqual([...rows.keys()].sort(), Object.keys(FAULTS).sort());
    for (const [code, fault] of rows) assert.equal(fault, FAULTS[code as keyof typeof FAULTS].fault, code);
  });
});

describe('engine failures, classed', () => {
  const user = ['/home/alice/data', '/home/alice', '/home/alice/run'];
  it("puts berth-runc's refusal of the user's own path on the job, of a site mount on the node", () => {
    const own = containerFailure('7', 'img@sha256:x', GATE('/home/alice/data/sub'), user);
    assert.equal(own.code, 'PATH_UNREACHABLE');
    assert.match(own.message, /^job 7: the host path \/home\/alice\/data\/sub cannot be opened by uid 2001 \(Permission denied\), and a container may mount only what its user can open; make it readable for you, or leave it out of --container-mounts$/);
    const site = containerFailure('7', 'img@sha256:x', GATE('/scratch'), user);
    assert.equal(site.code, 'NODE_CONFIG');
    assert.match(site.message, /\/scratch, which this node mounts into every job/);
    assert.equal(containerFailure('7', 'i', GATE('/home/alicex'), user).code, 'NODE_CONFIG', 'a sibling of home is not under it');
  });

  it("tells dockerd gone, a full disk and a taken name from dockerd's own failures", () => {
    const gone = Object.assign(new Error('connect ENOENT /run/docker.sock'), { code: 'ENOENT', syscall: 'connect', address: '/run/docker.sock' });
    assert.equal(containerFailure('7', 'i', gone, user).code, 'ENGINE_UNAVAILABLE');
    assert.equal(containerFailure('7', 'i', new Error('mkdir /var/lib/docker/overlay2/x: no space left on device'), user).code, 'DISK_FULL');
    assert.equal(containerFailure('7', 'i', new Error('Conflict. The container name "/berth-n1-job-7" is already in use by container "ab"'), user).code, 'NAME_CLASH');
    const other = containerFailure('7', 'i', new Error('OCI runtime create failed: berth: berthd did not answer within 10 s'), user);
    assert.equal(other.code, 'ENGINE_FAILED');
    const own = new BerthError('POLICY_DENIED', 'no');
    assert.equal(containerFailure('7', 'i', own, user), own, "berth's own errors pass as they are");
    assert.equal((agentFailure('7', Object.assign(new Error('write'), { code: 'ENOSPC' })) as BerthError).code, 'DISK_FULL');
    const plain = new Error('a bug');
    assert.equal(agentFailure('7', plain), plain);
  });

  it("never takes dockerd's socket for a registry that cannot be reached, nor a full disk for a bad pull", async () => {
    const h = harness();
    h.engine.failOn.set('pull', Object.assign(new Error('connect ECONNREFUSED /run/berth-sandbox/n1/docker.sock'), { code: 'ECONNREFUSED', syscall: 'connect', address: '/run/berth-sandbox/n1/docker.sock' }));
    await assert.rejects(h.images.ensure(IMAGE), (e: unknown) => e instanceof BerthError && e.code === 'ENGINE_UNAVAILABLE' && /dockerd on this node cannot be reached/.test(e.message));
    h.engine.failOn.set('pull', new Error('failed to register layer: write /var/lib/docker/x: no space left on device'));
    await assert.rejects(h.images.ensure(IMAGE), (e: unknown) => e instanceof BerthError && e.code === 'DISK_FULL' && /no space left to pull image '127\.0\.0\.1:5000\/berth\/demo:1\.0'/.test(e.message));
    h.engine.failOn.set('pull', new Error('received unexpected HTTP status: 502 Bad Gateway'));
    await assert.rejects(h.images.ensure(IMAGE), (e: unknown) => e instanceof BerthError && e.code === 'REGISTRY_UNAVAILABLE');
  });
});

describe('a failed prologue in berthd', () => {
  it("records a job fault for the job's steps, tells the user, and answers it as the job's", async () => {
    const h = faultHarness();
    const data = path.join(h.dir, 'data');
    mkdirSync(data, { mode: 0o755 });
    chmodSync(h.dir, 0o755);
    // the mode bits let alice in (berthd's check passes); berth-runc, opening it as alice, is refused (an ACL, say)
    h.engine.failOn.set('start', GATE(data));
    const input = prologueInput({ options: { mounts: [{ source: data, target: '/data', readOnly: false }], workdir: '', envNames: [], name: '' } });
    const err = await h.jobs.prologue(input).then(() => undefined, (e: unknown) => h.jobs.prologueFailed(input, e));
    assert.ok(err instanceof BerthError);
    assert.equal(err.code, 'PATH_UNREACHABLE');
    assert.equal(err.fault, 'job');
    const file = path.join(h.faults.dir, '42');
    const text = readFileSync(file, 'utf8');
    assert.match(text, new RegExp(`^uid=2001\ncode=PATH_UNREACHABLE\nreason=the host path ${data} cannot be opened by uid 2001 .*\nmessage=berth: job 42 fails on n1, no step runs there: the host path ${data} cannot be opened`));
    assert.equal(statSync(file).mode & 0o777, 0o644, 'readable by the plugin, written by root only');
    assert.equal(h.jobs.fault('42')?.code, 'PATH_UNREACHABLE');
    assert.equal(h.told.length, 1, 'told before the hook is answered');
    assert.equal(h.told[0]![1], `berth: job 42 failed on n1 before its first step: ${h.jobs.fault('42')?.reason}`);
    assert.match(h.told[0]![1], /cannot be opened by uid 2001 \(Permission denied\)/);
    assert.equal(h.engine.containers.size, 0, 'nothing half-made is left');
    // the node accounts for the job, with no container and berth's reason, once
    const [rec, ...more] = h.accounting();
    assert.deepEqual(more, []);
    assert.equal(rec!.RecordType, 'job');
    assert.equal(rec!.JobID, '42');
    assert.equal(rec!.State, 'FAILED');
    assert.equal(rec!.ContainerID, '');
    assert.equal(rec!.User, 'alice');
    assert.match(String(rec!.Reason), /^PATH_UNREACHABLE: the host path .* cannot be opened by uid 2001/);
    // the epilogue ends the record, and writes no second one
    await h.jobs.epilogue('42');
    assert.equal(h.jobs.fault('42'), undefined);
    assert.equal(h.accounting().length, 1);
  });

  it('records nothing for a node fault and answers it as the node\'s', async () => {
    const h = faultHarness();
    h.engine.failOn.set('create', new Error('write /var/lib/docker/containers/x/config.v2.json: no space left on device'));
    const err = await h.jobs.prologue(prologueInput()).then(() => undefined, (e: unknown) => h.jobs.prologueFailed(prologueInput(), e));
    assert.ok(err instanceof BerthError);
    assert.equal(err.code, 'DISK_FULL');
    assert.equal(err.fault ?? faultOf(err.code), 'node');
    assert.deepEqual(h.faults.jobs(), []);
    assert.deepEqual(h.told, []);
    assert.deepEqual(h.accounting(), [], 'a node fault requeues the job: this node ran nothing of it');
  });

  it("makes a job fault the node's when it cannot be recorded: the job's steps would not know", async () => {
    const h = faultHarness();
    mkdirSync(path.dirname(h.faults.dir), { recursive: true });
    writeFileSync(h.faults.dir, 'not a directory');
    const err = await h.jobs.prologueFailed(prologueInput(), new BerthError('IMAGE_NOT_FOUND', "image 'x' was not found"));
    assert.ok(err instanceof BerthError);
    assert.equal(err.code, 'IMAGE_NOT_FOUND');
    assert.equal(err.fault, 'node');
    assert.match(err.message, /berthd could not record this for the job's steps/);
  });

  it('clears an old fault when the requeued job starts', async () => {
    const h = faultHarness();
    h.faults.record({ jobId: '42', uid: 2001, code: 'IMAGE_NOT_FOUND', reason: 'gone', message: 'berth: gone' });
    await h.jobs.prologue(prologueInput());
    assert.equal(h.jobs.fault('42'), undefined);
  });

  it('sends the class beside the code, as gRPC metadata', () => {
    const md = (e: BerthError) => (toServiceError(e).metadata as grpc.Metadata).get(FAULT_METADATA_KEY)[0];
    assert.equal(md(new BerthError('IMAGE_NOT_FOUND', 'x')), 'job');
    assert.equal(md(new BerthError('DISK_FULL', 'x')), 'node');
    assert.equal(md(new BerthError('IMAGE_NOT_FOUND', 'x', { fault: 'node' })), 'node', 'what berthd knows wins over the table');
  });
});

describe('the JobPrologue handler and a faulted job', () => {
  const handlers = (h: ReturnType<typeof faultHarness>, caller: { kind: 'root' } | { kind: 'user'; uid: number; gid: number } = { kind: 'root' }) => makeAgentHandlers('admin-socket', {
    jobs: h.jobs, node: 'n1', log: h.log,
    auth: { authenticate: async () => caller },
    lifecycle: { assertServing: () => undefined },
    drain: { assertAccepting: () => undefined },
  } as unknown as AgentServiceDeps);
  const call = <Req>(handler: unknown, request: Req): Promise<{ err: grpc.ServiceError | null; res: unknown }> => new Promise((resolve) => {
    (handler as grpc.handleUnaryCall<Req, unknown>)({ request, metadata: new grpc.Metadata(), getAuthContext: () => ({}) } as unknown as grpc.ServerUnaryCall<Req, unknown>,
      (err, res) => resolve({ err: err as grpc.ServiceError | null, res }));
  });

  it('answers a job fault with its class, and berth job / berth exec with the reason, to the owner only', async () => {
    const h = faultHarness();
    const req = { ...prologueInput({ image: '127.0.0.1:5000/berth/gone:1' }), requestedImage: '', options: null, account: '', partition: '' };
    const { err } = await call(handlers(h).JobPrologue, req);
    assert.equal(err?.metadata?.get(FAULT_METADATA_KEY)[0], 'job');
    assert.equal(err?.metadata?.get('x-berth-error-code')[0], 'IMAGE_NOT_FOUND');
    const owner = await call(handlers(h, { kind: 'user', uid: 2001, gid: 2001 }).GetJob, { jobId: '42' });
    assert.equal(owner.err?.metadata?.get('x-berth-error-code')[0], 'JOB_FAULTED');
    assert.match(owner.err?.details ?? '', /^job 42 has no container on n1: it could not be made when the job started: image '127\.0\.0\.1:5000\/berth\/gone:1' was not found in registry 127\.0\.0\.1:5000/);
    const other = await call(handlers(h, { kind: 'user', uid: 2002, gid: 2002 }).GetJob, { jobId: '42' });
    assert.equal(other.err?.metadata?.get('x-berth-error-code')[0], 'JOB_NOT_FOUND', "another user is not told this job's reason");
  });
});

describe('the prolog hook', () => {
  const failed = (e: BerthError) => Object.assign(new Error(e.message), toServiceError(e));

  it('exits 0 for a job fault, saying so, and drains nothing', async () => {
    const lines: string[] = [];
    const calls: string[][] = [];
    const code = await prologFailed(failed(new BerthError('POLICY_DENIED', 'policy says no', { fault: 'job' })), { jobId: '9', node: 'n2', line: "job 9 on n2, image 'x': policy says no", reason: 'policy says no' }, (l) => lines.push(l), async (a) => void calls.push(a));
    assert.equal(code, 0);
    assert.deepEqual(calls, []);
    assert.match(lines[0]!, /^berth prolog: job 9 on n2, image 'x': policy says no \[a job fault \(POLICY_DENIED\): the job's steps fail with this reason; the node stays in service\]$/);
  });

  it("exits 1 for a node fault after draining the node with berth's reason, and notes it on the job", async () => {
    const calls: string[][] = [];
    const lines: string[] = [];
    const code = await prologFailed(failed(new BerthError('DISK_FULL', 'job 9: no space left')), { jobId: '9', node: 'n2', line: 'job 9 on n2: no space left', reason: 'job 9: no space left' }, (l) => lines.push(l), async (a) => void calls.push(a));
    assert.equal(code, 1);
    assert.deepEqual(calls[0], ['update', 'nodename=n2', 'state=drain', 'reason=berth: disk full: no space left (job 9)']);
    assert.deepEqual(calls[1], ['update', 'jobid=9', 'admincomment=berth: disk full: no space left (job 9)']);
    assert.match(lines[0]!, /\[a node fault \(DISK_FULL\): the node is drained\]$/);
  });

  it("takes a job-class code without berthd's word for it as the node's, and an unreachable berthd too", async () => {
    // an older berthd sends no class: its job's steps would not know of a fault, so the node drains
    const md = new grpc.Metadata();
    md.set('x-berth-error-code', 'IMAGE_NOT_FOUND');
    assert.deepEqual(hookFailure(Object.assign(new Error('x'), { code: 5, details: 'x', metadata: md })), { fault: 'node', code: 'IMAGE_NOT_FOUND' });
    const gone = Object.assign(new Error('14 UNAVAILABLE'), { code: grpc.status.UNAVAILABLE, details: 'No connection established. Last error: connect ENOENT /run/berth/n2/admin.sock', metadata: new grpc.Metadata() });
    assert.deepEqual(hookFailure(gone), { fault: 'node', code: 'AGENT_UNAVAILABLE' });
    const calls: string[][] = [];
    assert.equal(await prologFailed(gone, { jobId: '9', node: 'n2', line: 'job 9 on n2: berthd on n2 is not reachable', reason: 'berthd on n2 is not reachable' }, () => undefined, async (a) => void calls.push(a)), 1);
    assert.match(calls[0]![3]!, /^reason=berth: berthd down: berthd on n2 is not reachable \(job 9\)$/);
    const failing = await prologFailed(gone, { jobId: '9', node: 'n2', line: 'job 9', reason: 'x' }, () => undefined, async () => {
      throw new Error('slurmctld is down');
    });
    assert.equal(failing, 1, 'a drain that cannot be set still fails the prolog: slurmd drains the node itself');
  });

  it("touches Slurm's nodes only where Slurm runs the hook: never by hand, never in a test", async () => {
    assert.equal(inSlurm({ SLURM_SCRIPT_CONTEXT: 'prolog_slurmd' }), true);
    assert.equal(inSlurm({ BERTH_HOOK_CONTEXT: 'slurmstepd' }), true, 'the SPANK plugin says so for step-prolog');
    assert.equal(inSlurm({ SLURMD_NODENAME: 'n1', SLURM_JOB_ID: '9' }), false);
    await assert.rejects(scontrolFor({ SLURMD_NODENAME: 'n1' })(['update', 'nodename=n1', 'state=drain', 'reason=x']), /not run by slurmd or slurmstepd/);
  });

  it('keeps the drain reason on one line and within what Slurm stores', () => {
    const r = drainReason('ENGINE_UNAVAILABLE', `dockerd\ncannot be reached ${'x'.repeat(400)}`);
    assert.match(r, /^berth: dockerd down: dockerd cannot be reached x+$/);
    assert.ok(r.length <= 250);
  });
});

describe('the fault record on disk', () => {
  it('is written whole, one line per field, and refuses what is not a job id', () => {
    const h = harness();
    const faults = new JobFaults(path.join(h.dir, 'faults'));
    faults.record({ jobId: '5', uid: 2001, code: 'NAME_CLASH', reason: 'two\nlines', message: 'berth: a\nb' });
    assert.equal(readFileSync(path.join(h.dir, 'faults', '5'), 'utf8'), 'uid=2001\ncode=NAME_CLASH\nreason=two lines\nmessage=berth: a b\n');
    assert.equal(statSync(path.join(h.dir, 'faults')).mode & 0o777, 0o755);
    assert.deepEqual(faults.jobs(), ['5']);
    assert.throws(() => faults.record({ jobId: '../x', uid: 1, code: 'NAME_CLASH', reason: '', message: '' }), /not a Slurm job id/);
    faults.clear('5');
    assert.deepEqual(faults.jobs(), []);
  });
});
