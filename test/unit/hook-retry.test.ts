import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { agentTarget, describeGrpcError, unaryCall } from '../../services/cli/agent-client';
import { runHook } from '../../services/cli/hook';
import { backoffMs, callWithRetry, epilogueOrSpool, gaveUp, hookCall, isRetryable, retryWindowMs } from '../../services/cli/hook-retry';
import { readSpooledEpilogs } from '../../services/shared/epilog-spool';
import { serviceDefinition } from '../../services/shared/service-definition';
import { SERVICE_NAME } from '../../services/shared/proto-names';

function grpcError(code: number, details: string, berthCode?: string): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (berthCode) metadata.set('x-berth-error-code', berthCode);
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata });
}

/** a clock the retry loop's sleeps move forward */
function fakeClock() {
  let t = 1_000_000;
  return { now: () => t, sleep: async (ms: number) => void (t += ms), advance: (ms: number) => void (t += ms), random: () => 0.5 };
}

describe('hook retry: what is tried again', () => {
  const cases: [string, grpc.ServiceError | Error, boolean][] = [
    ['no socket (berthd stopped)', grpcError(grpc.status.UNAVAILABLE, 'No connection established. Last error: null.'), true],
    ['connection refused (a stale socket)', grpcError(grpc.status.UNAVAILABLE, 'No connection established. Last error: Error: connect ECONNREFUSED /run/berth/n1/admin.sock.'), true],
    ['cut off mid-flight (berthd killed)', grpcError(grpc.status.UNAVAILABLE, 'Connection dropped'), true],
    ['cancelled (berthd shut down under the call)', grpcError(grpc.status.CANCELLED, 'Call cancelled'), true],
    ['a stream reset under the call', grpcError(grpc.status.INTERNAL, 'Received RST_STREAM with code 2 triggered by internal client error: read ECONNRESET'), true],
    ['berthd recovering', grpcError(grpc.status.UNAVAILABLE, 'berthd on n1 is recovering (starting); try again shortly', 'AGENT_UNAVAILABLE'), true],
    ['the registry down (berthd answered)', grpcError(grpc.status.UNAVAILABLE, 'registry 127.0.0.1:5000 cannot be reached', 'REGISTRY_UNAVAILABLE'), false],
    ['a failed pull (berthd answered)', grpcError(grpc.status.UNAVAILABLE, 'pull failed', 'PULL_FAILED'), false],
    ['dockerd refused (berthd answered)', grpcError(grpc.status.INTERNAL, 'Docker could not create the container', 'ENGINE_FAILED'), false],
    ["berthd's own internal error mentioning a reset", grpcError(grpc.status.INTERNAL, 'internal error in berthd: read ECONNRESET'), false],
    ['the call\'s own deadline', grpcError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), false],
    ['a refusal', grpcError(grpc.status.PERMISSION_DENIED, 'policy denies', 'POLICY_DENIED'), false],
    ['not a gRPC error', new Error('boom'), false],
  ];
  for (const [what, err, retry] of cases) {
    it(`${retry ? 'retries' : 'does not retry'}: ${what}`, () => assert.equal(isRetryable(err), retry));
  }

  it('reads the window from BERTH_HOOK_RETRY_SECONDS: 60 s by default, 0 for none, the default for nonsense', () => {
    assert.equal(retryWindowMs({}), 60_000);
    assert.equal(retryWindowMs({ BERTH_HOOK_RETRY_SECONDS: '20' }), 20_000);
    assert.equal(retryWindowMs({ BERTH_HOOK_RETRY_SECONDS: '0' }), 0);
    assert.equal(retryWindowMs({ BERTH_HOOK_RETRY_SECONDS: 'soon' }), 60_000);
  });

  it('backs off from 100 ms to at most 1 s, with jitter', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 9].map((n) => backoffMs(n, () => 0.5)), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(backoffMs(0, () => 0), 80);
    assert.equal(backoffMs(9, () => 1), 1200);
  });
});

describe('hook retry: the window', () => {
  const down = grpcError(grpc.status.UNAVAILABLE, 'No connection established. Last error: null.');

  it('tries again until berthd answers, and says how long it waited', async () => {
    const c = fakeClock();
    let n = 0;
    const r = await callWithRetry(async () => {
      if (++n < 5) throw down;
      return 'prepared';
    }, { windowMs: 60_000, timeoutMs: 600_000, ...c });
    assert.equal(r.value, 'prepared');
    assert.equal(r.attempts, 5);
    assert.equal(r.waitedMs, 100 + 200 + 400 + 800);
  });

  it('gives up once berthd has been unreachable for the window, naming the tries in the error', async () => {
    const c = fakeClock();
    let n = 0;
    const err = await callWithRetry(async () => {
      n++;
      throw down;
    }, { windowMs: 10_000, timeoutMs: 600_000, ...c }).then(() => undefined, (e: unknown) => e);
    assert.ok(gaveUp(err));
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.ok(err.berthRetriedMs <= 10_000 && err.berthRetriedMs > 8_000, `${err.berthRetriedMs}`);
    assert.equal(err.berthAttempts, n);
    assert.match(err.details, /^No connection established.*; tried \d+ times over \d+\.\d s$/);
    // the message the hook prints still says berthd is not reachable
    assert.match(describeGrpcError(err, agentTarget('n1', {})), /berthd on n1 is not reachable at .*tried \d+ times/);
  });

  it('does not retry an answer berthd gave', async () => {
    const c = fakeClock();
    let n = 0;
    const refused = grpcError(grpc.status.UNAVAILABLE, 'registry down', 'REGISTRY_UNAVAILABLE');
    await assert.rejects(callWithRetry(async () => {
      n++;
      throw refused;
    }, { windowMs: 60_000, timeoutMs: 600_000, ...c }), (e) => e === refused);
    assert.equal(n, 1);
  });

  it('makes one attempt with a window of 0 and throws its own error', async () => {
    const c = fakeClock();
    let n = 0;
    await assert.rejects(callWithRetry(async () => {
      n++;
      throw down;
    }, { windowMs: 0, timeoutMs: 600_000, ...c }), (e) => e === down);
    assert.equal(n, 1);
  });

  it('starts the window again after an attempt that ran a while before it was cut off (berthd restarted twice during a long pull)', async () => {
    const c = fakeClock();
    const script = ['down', 'down', 'long', 'down', 'down', 'down', 'ok'];
    const remaining: number[] = [];
    const r = await callWithRetry(async (left) => {
      remaining.push(left);
      const step = script.shift();
      if (step === 'long') {
        c.advance(30_000); // pulling, then berthd is killed again
        throw grpcError(grpc.status.UNAVAILABLE, 'Connection dropped');
      }
      if (step === 'down') {
        c.advance(5_000);
        throw down;
      }
      return 'ok';
    }, { windowMs: 12_000, timeoutMs: 600_000, ...c });
    assert.equal(r.value, 'ok');
    assert.equal(r.attempts, 7);
    // every attempt gets what is left of the hook's whole timeout, not a fresh one
    assert.ok(remaining.every((left, i) => i === 0 || left < remaining[i - 1]!), JSON.stringify(remaining));
  });

  it('never goes past the hook\'s overall timeout', async () => {
    const c = fakeClock();
    const err = await callWithRetry(async () => {
      c.advance(400);
      throw down;
    }, { windowMs: 60_000, timeoutMs: 3_000, ...c }).then(() => undefined, (e: unknown) => e);
    assert.ok(gaveUp(err));
    assert.ok(c.now() - 1_000_000 <= 3_000 + 1000, `${c.now() - 1_000_000}`);
  });
});

/** a stand-in berthd on a unix socket: JobPrologue and JobEpilogue answer, or hang when told to */
async function fakeAgent(socket: string, o: { hang?: boolean; epilogueError?: grpc.ServiceError } = {}) {
  const server = new grpc.Server();
  const calls: string[] = [];
  server.addService(serviceDefinition(SERVICE_NAME), {
    JobPrologue: (call: grpc.ServerUnaryCall<{ jobId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      calls.push(`prologue ${call.request.jobId}`);
      if (!o.hang) cb(null, { alreadyPrepared: calls.length > 1, pullMillis: 0 });
    },
    JobEpilogue: (call: grpc.ServerUnaryCall<{ jobId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      calls.push(`epilogue ${call.request.jobId}`);
      if (o.epilogueError) cb(o.epilogueError);
      else cb(null, { containersRemoved: 1, wasKnown: true });
    },
  } as unknown as grpc.UntypedServiceImplementation);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return { server, calls };
}

describe('hook retry through a real socket', () => {
  function runDir() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-hook-retry-'));
    return { dir, env: { BERTH_RUN_DIR: dir }, socket: path.join(dir, 'n1', 'admin.sock'), done: () => rmSync(dir, { recursive: true, force: true }) };
  }

  it('a prologue cut off by berthd going away is made again on the berthd that comes back', async () => {
    const r = runDir();
    try {
      mkdirSync(path.dirname(r.socket), { recursive: true });
      const first = await fakeAgent(r.socket, { hang: true });
      const target = { ...agentTarget('n1', r.env), asRoot: true, socket: r.socket };
      const began = Date.now();
      const call = hookCall(target, 'JobPrologue', '7', (c, md, ms) => unaryCall(c.JobPrologue.bind(c), { jobId: '7' }, md, ms), { windowMs: 10_000, timeoutMs: 30_000 });
      await new Promise((res) => setTimeout(res, 300));
      first.server.forceShutdown(); // the call is in flight: cut off
      rmSync(r.socket, { force: true });
      await new Promise((res) => setTimeout(res, 700)); // berthd restarting: no socket
      const second = await fakeAgent(r.socket);
      const upAt = Date.now();
      const out = await call;
      const after = Date.now() - upAt;
      assert.ok(out.attempts >= 2, `attempts ${out.attempts}`);
      assert.deepEqual(second.calls, ['prologue 7']);
      assert.ok(after < 1500, `answered ${after} ms after berthd was back`);
      assert.ok(Date.now() - began < 5000);
      second.server.forceShutdown();
    } finally {
      r.done();
    }
  });

  it('an epilog that cannot reach berthd within its window is spooled and succeeds', async () => {
    const r = runDir();
    try {
      const target = { ...agentTarget('n1', r.env), asRoot: true, socket: r.socket };
      const lines: string[] = [];
      const out = await epilogueOrSpool(target, '41', r.env, (c, md, ms) => unaryCall(c.JobEpilogue.bind(c), { jobId: '41' }, md, ms), { windowMs: 500, timeoutMs: 30_000, stderr: (l) => lines.push(l) });
      assert.equal(out.reached, false);
      assert.ok(out.attempts > 1);
      const spool = path.join(r.dir, 'n1', 'epilog-spool');
      assert.equal(out.spoolFile, path.join(spool, '41.json'));
      assert.equal(statSync(spool).mode & 0o777, 0o700);
      assert.equal(statSync(out.spoolFile!).mode & 0o777, 0o600);
      const { records } = readSpooledEpilogs(spool);
      assert.equal(records.length, 1);
      assert.equal(records[0]!.jobId, '41');
      assert.equal(records[0]!.node, 'n1');
      assert.match(records[0]!.reason, /No connection established.*tried \d+ times/);
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, /^berth epilog: job 41 on n1: berthd could not be reached .*; left .*41\.json for berthd to end the job when it is back/);
    } finally {
      r.done();
    }
  });

  it('an epilog berthd answered with an error is not spooled: the error stands', async () => {
    const r = runDir();
    try {
      mkdirSync(path.dirname(r.socket), { recursive: true });
      const agent = await fakeAgent(r.socket, { epilogueError: grpcError(grpc.status.INTERNAL, 'dockerd refused to remove the container', 'ENGINE_FAILED') });
      const target = { ...agentTarget('n1', r.env), asRoot: true, socket: r.socket };
      await assert.rejects(epilogueOrSpool(target, '42', r.env, (c, md, ms) => unaryCall(c.JobEpilogue.bind(c), { jobId: '42' }, md, ms), { windowMs: 5_000, timeoutMs: 30_000, stderr: () => undefined }),
        (e: grpc.ServiceError) => e.code === grpc.status.INTERNAL && /refused to remove/.test(e.details));
      assert.equal(existsSync(path.join(r.dir, 'n1', 'epilog-spool', '42.json')), false);
      assert.deepEqual(agent.calls, ['epilogue 42']);
      agent.server.forceShutdown();
    } finally {
      r.done();
    }
  });

  it('an epilog that reaches berthd writes no spool record', async () => {
    const r = runDir();
    try {
      mkdirSync(path.dirname(r.socket), { recursive: true });
      const agent = await fakeAgent(r.socket);
      const target = { ...agentTarget('n1', r.env), asRoot: true, socket: r.socket };
      const out = await epilogueOrSpool(target, '43', r.env, (c, md, ms) => unaryCall(c.JobEpilogue.bind(c), { jobId: '43' }, md, ms), { windowMs: 5_000, timeoutMs: 30_000, stderr: () => undefined });
      assert.deepEqual(out, { reached: true, attempts: 1, waitedMs: 0 });
      assert.equal(existsSync(path.join(r.dir, 'n1', 'epilog-spool')), false);
      agent.server.forceShutdown();
    } finally {
      r.done();
    }
  });
});

describe('berth hook prolog|epilog without berthd', { skip: process.getuid?.() !== 0 && 'the hooks run as root (the admin socket)' }, () => {
  const env = (dir: string, jobId: string) => ({
    SLURM_JOB_ID: jobId, SLURM_JOB_UID: '2001', SLURM_JOB_GID: '2001', SLURM_JOB_USER: 'alice', SLURMD_NODENAME: 'n1',
    SPANK_BERTH_CONTAINER_IMAGE: '127.0.0.1:5000/berth/demo:1.0', BERTH_RUN_DIR: dir, BERTH_HOOK_RETRY_SECONDS: '0.4',
  });

  it('the epilog spools the job and exits 0: the node is not drained for an absent berthd', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-hook-'));
    try {
      const lines: string[] = [];
      assert.equal(await runHook('epilog', env(dir, '45'), (l) => lines.push(l)), 0);
      assert.ok(existsSync(path.join(dir, 'n1', 'epilog-spool', '45.json')));
      assert.match(lines.join('\n'), /berthd could not be reached/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the prolog fails after the window, saying how long it tried', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-hook-'));
    try {
      const lines: string[] = [];
      const began = Date.now();
      assert.equal(await runHook('prolog', env(dir, '46'), (l) => lines.push(l)), 1);
      assert.ok(Date.now() - began >= 100, 'it waited for berthd');
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, /^berth prolog: job 46 on n1, image '127\.0\.0\.1:5000\/berth\/demo:1\.0': berthd on n1 is not reachable at .*\/n1\/admin\.sock \(.*; tried ([2-9]|\d\d+) times over 0\.\d s\); is berthd running\?/);
      assert.equal(existsSync(path.join(dir, 'n1', 'epilog-spool')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
