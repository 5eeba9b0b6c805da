// The method table and the one wiring that serves it (server/method-table.ts,
// server/agent-service.ts), with fake services behind the handlers' narrow interfaces and the
// real authenticator over a fake munge.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { BerthError, ERROR_STATUS, type ErrorCode } from '../../services/shared/errors';
import { MUNGE_METADATA_KEY, SERVICE_NAME } from '../../services/shared/proto-names';
import { mungePayload } from '../../services/shared/munge';
import { serviceDefinition } from '../../services/shared/service-definition';
import { CallerAuthenticator, type Trust } from '../../services/agent/auth/caller';
import type { JobRecord } from '../../services/agent/jobs/job-record';
import { makeAgentHandlers } from '../../services/agent/server/agent-service';
import { type AgentServiceDeps, type MethodName, type MethodSpec, METHODS, remoteRoles } from '../../services/agent/server/method-table';

const NODE = 'n1';
const ALICE = 2001;
const BOB = 2002;

function record(jobId: string, uid: number): JobRecord {
  return {
    jobId, uid, gid: uid, user: uid === ALICE ? 'alice' : 'bob', node: NODE, imageRef: 'img:1', imageDigest: 'img@sha256:1', containerId: `c${jobId}`,
    containerName: `berth-${jobId}`, state: 'RUNNING', startTime: '2026-01-01T00:00:00Z', endTime: '', error: '', workDir: '/', steps: [], userContainers: [],
  } as unknown as JobRecord;
}

/** Fake services: each records that it was reached, so a refusal can be shown to come before any of them. */
function harness(opts: { serving?: boolean; drained?: boolean } = {}) {
  const reached: string[] = [];
  const logged: { level: string; message: string; meta?: object }[] = [];
  const jobs = new Map([['42', record('42', ALICE)], ['43', record('43', BOB)]]);
  const reach = <T>(name: string, value: T) => (..._args: unknown[]) => {
    reached.push(name);
    return value;
  };
  let failWith: unknown;
  const maybeFail = <T>(name: string, value: T) => async (..._args: unknown[]) => {
    reached.push(name);
    if (failWith !== undefined) throw failWith;
    return value;
  };
  const deps = {
    jobs: {
      get: (id: string) => jobs.get(id),
      fault: () => undefined,
      list: () => [...jobs.values()],
      prologue: maybeFail('jobs.prologue', { job: record('44', ALICE), alreadyPrepared: false, pullMillis: 0 }),
      prologueFailed: async (_r: unknown, err: unknown) => err,
      epilogue: maybeFail('jobs.epilogue', { containersRemoved: 1 }),
      stepPrologueFailed: async (_r: unknown, err: unknown) => err,
    },
    steps: { start: maybeFail('steps.start', undefined) },
    identities: { lookup: async () => ({ name: 'alice', home: '/home/alice' }) },
    node: NODE,
    stopGraceMs: 10,
    lifecycle: {
      assertServing: (node: string) => {
        if (opts.serving === false) throw new BerthError('AGENT_UNAVAILABLE', `berthd on ${node} is recovering; try again shortly`);
      },
    },
    log: {
      info: (message: string, meta?: object) => void logged.push({ level: 'info', message, meta }),
      warn: (message: string, meta?: object) => void logged.push({ level: 'warn', message, meta }),
      error: (message: string, meta?: object) => void logged.push({ level: 'error', message, meta }),
    },
    imageCache: { list: maybeFail('imageCache.list', { images: [], usagePercent: 1 }), collect: maybeFail('imageCache.collect', { usagePercent: 1, removed: [], freedBytes: 0 }) },
    images: { ensure: maybeFail('images.ensure', { digestRef: 'img@sha256:1', pulled: true, millis: 1 }) },
    accounting: { file: '/nonexistent/berth-accounting.log', rotation: { keep: 0 } },
    stepContainers: {
      prologue: maybeFail('stepContainers.prologue', { containerName: 'c', stepContainer: false, pullMillis: 0, imageDigest: '', warnings: [] }),
      epilogue: maybeFail('stepContainers.epilogue', { containerRemoved: false }),
    },
    drain: {
      assertAccepting: (node: string, jobId: string) => {
        if (opts.drained) throw new BerthError('NODE_DRAINED', `node ${node} is drained for container jobs; job ${jobId} was not started here`);
      },
      drain: reach('drain.drain', true),
      resume: reach('drain.resume', true),
      get: () => ({ drained: false, reason: '', since: '', by: '' }),
    },
    status: maybeFail('status', { node: NODE, state: 'SERVING', drain: { drained: false, reason: '', since: '', by: '' } }),
    containers: maybeFail('containers', []),
    submitCheck: { check: maybeFail('submitCheck.check', { exitCode: 0, stdout: '', stderr: '' }) },
  };
  return { deps, reached, logged, jobs, failWith: (err: unknown) => { failWith = err; } };
}

/** a credential as munge would vouch for it: made by UID for METHOD and JOBID */
const credential = (uid: number, method: string, jobId: string) => JSON.stringify([uid, mungePayload(method, jobId)]);

type Caller = { kind: 'root' } | { kind: 'user'; uid: number; gid: number };

interface Outcome {
  err?: Partial<grpc.ServiceError>;
  res?: unknown;
  written: unknown[];
}

/** A request of METHOD for JOB (and step 0); ExecStep's is its `start` message. */
function requestOf(method: MethodName, jobId: string, stepId = '0'): unknown {
  const base = { jobId, stepId, uid: ALICE, gid: ALICE, user: 'alice', image: 'img:1', requestedImage: '', workDir: '/', cpus: 1, memoryBytes: 0, options: null, account: '', partition: '',
    argv: ['true'], hasStatus: false, exitCode: 0, signal: '', dryRun: true, allUnused: false, drain: true, reason: 'test', since: '', until: '', jobsOnly: false };
  if (method === 'ExecStep') return { msg: 'start', start: { jobId, stepId, taskId: 0, argv: ['true'], cwd: '/', env: [], tty: false, rows: 0, cols: 0 } };
  if (method === 'QueryAccounting') return { ...base, jobId: '' };
  return base;
}

/** Calls METHOD as the gRPC server would, and waits for its answer. */
function invoke(d: AgentServiceDeps, method: MethodName, request: unknown, who: { trust?: Trust; caller?: Caller; metadata?: grpc.Metadata; auth?: AgentServiceDeps['auth'] } = {}): Promise<Outcome> {
  const auth: AgentServiceDeps['auth'] = who.auth ?? { authenticate: async () => who.caller ?? { kind: 'root' } };
  const handlers = makeAgentHandlers(who.trust ?? 'user-socket', { ...d, auth });
  const handler = handlers[method] as unknown as (...a: unknown[]) => void;
  const metadata = who.metadata ?? new grpc.Metadata();
  return new Promise((resolve) => {
    const written: unknown[] = [];
    const spec = METHODS[method] as MethodSpec;
    if (spec.kind === 'unary') {
      handler({ request, metadata, getAuthContext: () => ({}) }, (err: grpc.ServiceError | null, res: unknown) => resolve({ ...(err ? { err } : { res }), written }));
      return;
    }
    const call = Object.assign(new EventEmitter(), {
      request, metadata, cancelled: false, getAuthContext: () => ({}),
      write: (m: unknown) => { written.push(m); return true; },
      end: () => resolve({ written }),
    });
    call.on('error', (err: Partial<grpc.ServiceError>) => resolve({ err, written }));
    handler(call);
    if (spec.kind === 'duplex') call.emit('data', request);
  });
}

const names = Object.keys(METHODS) as MethodName[];
const specOf = (m: MethodName) => METHODS[m] as MethodSpec;
const codeOf = (o: Outcome) => o.err?.metadata?.get('x-berth-error-code')[0];

describe('the method table', () => {
  it('has an entry for every method of berth.v1.NodeAgentService, of the call shape the proto gives it', () => {
    const def = serviceDefinition(SERVICE_NAME);
    assert.deepEqual([...names].sort(), Object.keys(def).sort());
    for (const [name, m] of Object.entries(def)) {
      const kind = m.requestStream && m.responseStream ? 'duplex' : m.responseStream ? 'server-stream' : m.requestStream ? 'client-stream' : 'unary';
      assert.equal(specOf(name as MethodName).kind, kind, name);
    }
  });

  it('finds a job id in every request of a job or step method, and none in a node method', () => {
    for (const m of names) {
      const s = specOf(m) as { scope: string; jobIdIn?: unknown; stepIdIn?: unknown };
      assert.equal(typeof s.jobIdIn === 'function', s.scope !== 'node', m);
      assert.equal(typeof s.stepIdIn === 'function', s.scope === 'step', m);
    }
  });

  it('serves the hooks and steps only on the node: no TCP role for them, one for every admin method', () => {
    const roles = remoteRoles();
    for (const m of names) {
      const s = specOf(m);
      if (s.role === 'hook' || m === 'ExecStep') assert.equal(roles[m], undefined, m);
      if (s.role === 'admin') assert.ok(roles[m], `${m} has a TCP role`);
    }
    assert.deepEqual(roles, { GetJob: 'read', ListJobs: 'read', ListImages: 'read', PruneImages: 'admin', GetStatus: 'read', ListContainers: 'read', SetDrain: 'admin', QueryAccounting: 'read', PullImage: 'admin' });
    assert.ok(Object.isFrozen(METHODS));
  });
});

describe('serving the table', () => {
  const user: Caller = { kind: 'user', uid: ALICE, gid: ALICE };

  it("refuses a user on every hook and admin method, before any service is reached", async () => {
    for (const m of names.filter((n) => specOf(n).role !== 'user')) {
      const h = harness();
      const o = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, '42'), { caller: user });
      assert.equal(o.err?.code, grpc.status.PERMISSION_DENIED, m);
      assert.equal(o.err?.details, `${m} is for root only (slurmd's hooks and admins)`);
      assert.deepEqual(h.reached, [], `${m}: nothing done for the user`);
    }
  });

  it('lets root reach the service behind every method', async () => {
    for (const m of names) {
      const h = harness();
      await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, '42'));
      const none = ['GetJob', 'ListJobs', 'QueryAccounting'];
      if (!none.includes(m)) assert.ok(h.reached.length > 0, `${m} reached its service`);
    }
  });

  it("holds a user to their own job: alice cannot act on bob's job, and learns nothing of it", async () => {
    for (const m of names.filter((n) => specOf(n).scope === 'own-job')) {
      const h = harness();
      const other = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, '43'), { caller: user });
      assert.equal(codeOf(other), 'PERMISSION_DENIED', m);
      assert.match(other.err?.details ?? '', /^job 43 on n1 belongs to another user/);
      assert.deepEqual(h.reached, []);
      const own = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, '42'), { caller: user });
      assert.notEqual(codeOf(own), 'PERMISSION_DENIED', `${m}: alice's own job`);
    }
    const h = harness();
    const listed = await invoke(h.deps as unknown as AgentServiceDeps, 'ListJobs', { uid: 0 }, { caller: user });
    assert.deepEqual((listed.res as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId), ['42'], 'ListJobs shows alice only hers');
    const records = await invoke(h.deps as unknown as AgentServiceDeps, 'QueryAccounting', { ...(requestOf('QueryAccounting', '') as object), uid: BOB }, { caller: user });
    assert.equal(codeOf(records), 'PERMISSION_DENIED');
  });

  it('binds the munge credential to the job: one made for job 42 does not act on job 43', async () => {
    const auth = new CallerAuthenticator({
      verify: async (cred: string) => {
        const [who, payload] = JSON.parse(cred) as [number, string];
        return { uid: who, gid: who, encodeTime: new Date(), payload };
      },
    });
    for (const m of names.filter((n) => specOf(n).scope !== 'node')) {
      const h = harness();
      const md = new grpc.Metadata();
      md.set(MUNGE_METADATA_KEY, credential(ALICE, m, '42'));
      const o = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, '43'), { auth, metadata: md });
      assert.equal(codeOf(o), 'UNAUTHENTICATED', m);
      assert.equal(o.err?.details, `${m}: the munge credential was made for 'berth.v1/${m}:42', not 'berth.v1/${m}:43'`);
      assert.deepEqual(h.reached, []);
    }
  });

  it('refuses a malformed job or step id with INVALID_REQUEST naming the method, before any service', async () => {
    for (const m of names.filter((n) => specOf(n).scope !== 'node')) {
      for (const bad of ['', '12;rm', '../1', '9'.repeat(21)]) {
        const h = harness();
        const o = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, bad));
        assert.equal(o.err?.code, grpc.status.INVALID_ARGUMENT, `${m} ${bad}`);
        assert.equal(codeOf(o), 'INVALID_REQUEST');
        assert.match(o.err?.details ?? '', new RegExp(`^${m}: (no job id was given|job id '.*' is not a Slurm job id): a job id is digits only`));
        assert.deepEqual(h.reached, []);
      }
    }
    for (const m of names.filter((n) => specOf(n).scope === 'step')) {
      const h = harness();
      const o = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, '42', '0;rm'));
      assert.equal(codeOf(o), 'INVALID_REQUEST', m);
      assert.match(o.err?.details ?? '', new RegExp(`^${m}: step id '0;rm' is not a Slurm step id`));
      assert.deepEqual(h.reached, []);
    }
  });

  it("maps a service's berth error to its gRPC status and code, and anything else to INTERNAL, logged", async () => {
    for (const code of ['NODE_DRAINED', 'IMAGE_NOT_FOUND', 'ENGINE_UNAVAILABLE', 'DISK_FULL', 'TIMEOUT'] as ErrorCode[]) {
      const h = harness();
      h.failWith(new BerthError(code, `it failed: ${code}`));
      const o = await invoke(h.deps as unknown as AgentServiceDeps, 'ListImages', {});
      assert.equal(o.err?.code, ERROR_STATUS[code], code);
      assert.equal(codeOf(o), code);
      assert.equal(o.err?.details, `it failed: ${code}`);
      assert.deepEqual(h.logged, [], 'a berth error is the answer, not a log line');
    }
    for (const m of ['ListImages', 'PullImage'] as MethodName[]) {
      const h = harness();
      h.failWith(new TypeError('x is undefined'));
      const o = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, ''));
      assert.equal(o.err?.code, grpc.status.INTERNAL, m);
      assert.equal(o.err?.details, 'internal error in berthd: x is undefined');
      assert.deepEqual(h.logged.map((l) => [l.level, l.message]), [['error', `${m} failed`]]);
    }
  });

  it('logs and counts a failed prologue with its class, the raw job id it was asked for', async () => {
    const h = harness();
    const counted: string[][] = [];
    const d = { ...h.deps, metrics: { hookFailed: (hook: string, code: string) => void counted.push([hook, code]) } };
    h.failWith(new BerthError('IMAGE_NOT_FOUND', "image 'x' was not found"));
    await invoke(d as unknown as AgentServiceDeps, 'JobPrologue', requestOf('JobPrologue', '42'));
    await invoke(d as unknown as AgentServiceDeps, 'JobEpilogue', requestOf('JobEpilogue', 'x'));
    assert.deepEqual(counted, [['prolog', 'IMAGE_NOT_FOUND'], ['epilog', 'INVALID_REQUEST']]);
    assert.deepEqual(h.logged.map((l) => [l.message, l.meta]), [
      ['prologue failed', { job: '42', code: 'IMAGE_NOT_FOUND', fault: 'job', error: "image 'x' was not found" }],
      ['epilogue failed', { job: 'x', code: 'INVALID_REQUEST', fault: 'node', error: "JobEpilogue: job id 'x' is not a Slurm job id: a job id is digits only, at most 20, as squeue shows it (e.g. 1234)" }],
    ]);
  });

  it('answers only while serving, except the methods that read state or files', async () => {
    for (const m of names) {
      const h = harness({ serving: false });
      const o = await invoke(h.deps as unknown as AgentServiceDeps, m, requestOf(m, '42'));
      if (specOf(m).phase === 'any') assert.notEqual(codeOf(o), 'AGENT_UNAVAILABLE', m);
      else assert.equal(codeOf(o), 'AGENT_UNAVAILABLE', m);
    }
  });

  it('refuses a new job on a drained node, and still answers a repeated prologue of a job running here', async () => {
    const h = harness({ drained: true });
    const fresh = await invoke(h.deps as unknown as AgentServiceDeps, 'JobPrologue', requestOf('JobPrologue', '99'));
    assert.equal(codeOf(fresh), 'NODE_DRAINED');
    assert.deepEqual(h.reached, []);
    const again = await invoke(h.deps as unknown as AgentServiceDeps, 'JobPrologue', requestOf('JobPrologue', '42'));
    assert.equal(again.err, undefined);
    assert.deepEqual(h.reached, ['jobs.prologue']);
    for (const m of names.filter((n) => n !== 'JobPrologue')) {
      const d = harness({ drained: true });
      const o = await invoke(d.deps as unknown as AgentServiceDeps, m, requestOf(m, '99'));
      assert.notEqual(codeOf(o), 'NODE_DRAINED', `${m} is answered on a drained node`);
    }
  });

  it('opens ExecStep only with `start`', async () => {
    const h = harness();
    const o = await invoke(h.deps as unknown as AgentServiceDeps, 'ExecStep', { msg: 'stdin', stdin: Buffer.from('x') });
    assert.equal(codeOf(o), 'INVALID_REQUEST');
    assert.equal(o.err?.details, 'ExecStep: the first message must be `start`');
  });
});
