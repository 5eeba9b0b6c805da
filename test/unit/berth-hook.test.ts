// berth-hook (scripts/native/berth-hook.c), the native step hooks, against a gRPC server of
// the real service definition on a unix socket: the requests it sends decode to what the Node
// hook (services/cli/hook.ts) sends from the same variables, it answers as the Node hook does,
// and it hands what it does not handle itself to the Node hook (run from source here).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../../services/shared/service-definition';
import { SERVICE_NAME } from '../../services/shared/proto-names';
import { prologueRequest, stepEpilogueRequest, stepPrologueRequest } from '../../services/cli/hook';
import { containerImage, hasStepFiles } from '../../services/cli/slurm-env';
import { FAULTS_HEADER_PATH, renderFaultsHeader } from '../../scripts/gen-hook-faults';

const REPO = path.resolve(import.meta.dirname, '../..');
const NATIVE = path.join(REPO, 'scripts/native');
const root = process.getuid?.() === 0;
const def = serviceDefinition(SERVICE_NAME);

type Answer = { error?: { code: grpc.status; details: string; metadata?: Record<string, string> }; value?: object };
type Handler = (req: Record<string, unknown>) => Answer;

describe('berth-hook, the native step hooks', { skip: !root && 'berth-hook speaks to the admin socket as root only' }, () => {
  let dir: string;
  let hook: string;
  let server: grpc.Server;
  const calls: { method: string; req: Record<string, unknown> }[] = [];
  let handlers: Record<string, Handler> = {};

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'berth-hook-'));
    hook = path.join(dir, 'berth-hook');
    // as scripts/build-native.sh builds it
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', hook,
      ...['berth-hook.c', 'berth_hook_step.c', 'berth_hook_job.c', 'berth_hook_allocation.c', 'berth_hook_options.c', 'berth_hook_env.c',
        'berth_hook_faults.c', 'berth_grpc.c', 'berth_pb.c', 'berth_submit_check.c', 'berth_utf8.c'].map((f) => path.join(NATIVE, f)), '-lnghttp2', '-lm', '-ldl'], { stdio: ['ignore', 'ignore', 'inherit'] });
    // the Node hook from source, for what berth-hook hands over
    writeFileSync(path.join(dir, 'berth'), `#!/bin/sh\nexec ${process.execPath} --import tsx ${path.join(REPO, 'services/cli/main.ts')} "$@"\n`);
    chmodSync(path.join(dir, 'berth'), 0o755);
    mkdirSync(path.join(dir, 'run', 'n9'), { recursive: true });
    server = new grpc.Server();
    const serve = (method: string) => (call: grpc.ServerUnaryCall<Record<string, unknown>, object>, cb: grpc.sendUnaryData<object>) => {
      calls.push({ method, req: call.request });
      const a: Answer = (handlers[method] ?? ((): Answer => ({ value: {} })))(call.request);
      if (a.error) {
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(a.error.metadata ?? {})) md.set(k, v);
        cb({ code: a.error.code, details: a.error.details, metadata: md, name: 'Error', message: a.error.details });
      } else cb(null, a.value ?? {});
    };
    server.addService(def, { StepPrologue: serve('StepPrologue'), StepEpilogue: serve('StepEpilogue'), JobEpilogue: serve('JobEpilogue'), JobPrologue: serve('JobPrologue') });
    // n09 and n10: nodes with zero-padded and two-digit names, for the job's prologue
    for (const n of ['n9', 'n09', 'n10']) {
      mkdirSync(path.join(dir, 'run', n), { recursive: true });
      await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${path.join(dir, 'run', n, 'admin.sock')}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    }
  });

  after(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const baseEnv = (): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin', SLURM_JOB_ID: '5', SLURM_STEP_ID: '0', SLURM_JOB_UID: '1000', SLURM_JOB_GID: '1001',
    SLURM_JOB_USER: 'alice', SLURMD_NODENAME: 'n9', BERTH_RUN_DIR: path.join(dir, 'run'),
  });

  function run(kind: string, env: Record<string, string>, berth = path.join(dir, 'berth'), node = false): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      // node: the Node hook itself (`berth hook KIND`), to compare with
      const c = node ? spawn(berth, ['hook', kind], { env, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(hook, [`--berth=${berth}`, kind], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
      c.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
      c.once('error', reject);
      c.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** what berthd decodes from the Node hook's request for ENV */
  const asNodeSends = (method: 'StepPrologue' | 'StepEpilogue' | 'JobEpilogue' | 'JobPrologue', req: object) => def[method]!.requestDeserialize(def[method]!.requestSerialize(req));

  const prologEnvs: Record<string, string>[] = [
    { BERTH_STEP_ARGV: 'true' },
    { BERTH_STEP_ARGV: '' },
    { BERTH_STEP_ARGV: 'bash\x1f\x1f-c\x1fecho "$x"\x1f' },
    { BERTH_STEP_ARGV: '\x1fx\x1f', SLURM_JOB_USER: 'jösé', SLURM_STEP_ID: 'batch' },
    {
      BERTH_CONTAINER_IMAGE: ' registry.example/img@sha256:' + 'a'.repeat(64) + ' ', BERTH_CONTAINER_IMAGE_REQUESTED: 'img:1',
      BERTH_CONTAINER_MOUNTS: ' /scratch//me/:/data:ro, /opt ,/srv:/srv:rw', BERTH_CONTAINER_WORKDIR: '/work//here/',
      BERTH_CONTAINER_ENV: 'OMP_NUM_THREADS, _X,OMP_NUM_THREADS', BERTH_CONTAINER_NAME: 'my.c-1',
      BERTH_CONTAINER_MOUNT_HOME: 'Yes', BERTH_CONTAINER_READONLY: '0', BERTH_STEP_ARGV: 'true',
    },
    { BERTH_CONTAINER_MOUNT_HOME: 'off', BERTH_CONTAINER_READONLY: ' on ', BERTH_CONTAINER_ENV: ' ', BERTH_CONTAINER_MOUNTS: '' },
    // pyxis's mount and name flags
    { BERTH_CONTAINER_MOUNTS: '/a:/b:ro+rslave,/c:/d:rbind+private+rw,tmpfs:/scratch,tmpfs:/t2:ro+nosuid+nodev,/e:/f:ro+ro', BERTH_CONTAINER_NAME: 'n1:exec' },
    { BERTH_CONTAINER_NAME: 'n1:auto' },
    { BERTH_CONTAINER_NAME: 'n1:no_exec' },
    { BERTH_CONTAINER_NAME: 'n1:create', BERTH_CONTAINER_MOUNTS: '/x:/y:slave' },
    // a tmpfs's own options, sent in size, nr_inodes, mode order
    { BERTH_CONTAINER_MOUNTS: 'tmpfs:/h:nr_inodes=2m,tmpfs:/s:mode=0700+ro+size=64m+nr_inodes=10k,tmpfs:/m:mode=750+mode=750' },
    // pyxis's --container-unshare: sent in net, ipc, uts order, each once
    { BERTH_CONTAINER_UNSHARE: 'uts, net,uts' },
    { BERTH_CONTAINER_UNSHARE: ' ipc ', BERTH_CONTAINER_NAME: 'n2' },
    { BERTH_CONTAINER_UNSHARE: ' ' },
  ];

  for (const extra of prologEnvs) {
    it(`sends the Node hook's StepPrologue request for ${JSON.stringify(extra)}`, async () => {
      calls.length = 0;
      handlers = {};
      const env = { ...baseEnv(), ...extra };
      const r = await run('step-prolog', env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(calls.length, 1);
      assert.deepEqual(calls[0]!.req, asNodeSends('StepPrologue', stepPrologueRequest(env)));
    });
  }

  it('sends the Node hook\'s StepEpilogue request for wait statuses, exits and signals', async () => {
    const statuses = ['', 'none', ' 0 ', '256', '-1', '33280', '1e3', ...Array.from({ length: 70 }, (_, i) => String(i + 1)), '134', '139', String(2 ** 40 + 9)];
    for (const s of statuses) {
      calls.length = 0;
      const env = { ...baseEnv(), BERTH_STEP_WAIT_STATUS: s };
      const r = await run('step-epilog', env);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(calls.map((c) => c.req), [asNodeSends('StepEpilogue', stepEpilogueRequest(env))], `wait status '${s}'`);
    }
  });

  it('prints the step prologue\'s warnings on stdout, one a line', async () => {
    handlers = { StepPrologue: () => ({ value: { containerName: 'c', warnings: ['berth: warning: no GPUs here', 'and 100 % more: ü'] } }) };
    const r = await run('step-prolog', { ...baseEnv(), BERTH_STEP_ARGV: 'true' });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'berth: warning: no GPUs here\nand 100 % more: ü\n');
    assert.equal(r.stderr, '');
  });

  it('fails a job fault with berthd\'s reason, as the Node hook words it, and asks once', async () => {
    calls.length = 0;
    const details = 'job 5 has no container on n9; give the step an image with srun --container-image=IMAGE (100%, ü)';
    handlers = { StepPrologue: () => ({ error: { code: grpc.status.FAILED_PRECONDITION, details, metadata: { 'x-berth-error-code': 'NO_CONTAINER', 'x-berth-fault': 'job' } } }) };
    const r = await run('step-prolog', { ...baseEnv(), BERTH_STEP_ARGV: 'true' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `berth: job 5 step 0 on n9: ${details}\n`);
    assert.equal(r.stdout, '');
    assert.equal(calls.length, 1);
  });

  it('says berthd\'s own deadline (DEADLINE_EXCEEDED with a berth code) as the Node step hook does', async () => {
    const error = { code: grpc.status.DEADLINE_EXCEEDED, details: 'the step container did not start in time', metadata: { 'x-berth-error-code': 'TIMEOUT', 'x-berth-fault': 'node' } };
    const env = { ...baseEnv(), BERTH_STEP_ARGV: 'true' };
    calls.length = 0;
    handlers = { StepPrologue: () => ({ error }) };
    const native = await run('step-prolog', env);
    const nativeCalls = calls.length;
    handlers = { StepPrologue: () => ({ error }) };
    const node = await run('step-prolog', env, path.join(dir, 'berth'), true);
    assert.deepEqual(native, node);
    assert.match(native.stderr, /berthd on n9 did not answer in time \(the step container did not start in time\)/);
    assert.equal(nativeCalls, 1);
  });

  it('fails a node fault of the step epilogue without asking again', async () => {
    calls.length = 0;
    handlers = { StepEpilogue: () => ({ error: { code: grpc.status.INTERNAL, details: 'dockerd refused: no such container', metadata: { 'x-berth-error-code': 'ENGINE_FAILED', 'x-berth-fault': 'node' } } }) };
    const r = await run('step-epilog', { ...baseEnv(), BERTH_STEP_WAIT_STATUS: '0' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'berth: job 5 step 0 on n9: dockerd refused: no such container\n');
    assert.equal(calls.length, 1);
  });

  it('hands a recovering berthd (AGENT_UNAVAILABLE) to the Node hook, which asks again', async () => {
    calls.length = 0;
    let n = 0;
    handlers = {
      StepPrologue: () => (n++ === 0
        ? { error: { code: grpc.status.UNAVAILABLE, details: 'berthd on n9 is recovering', metadata: { 'x-berth-error-code': 'AGENT_UNAVAILABLE', 'x-berth-fault': 'node' } } }
        : { value: { warnings: ['berth: warning: from the second answer'] } }),
    };
    const r = await run('step-prolog', { ...baseEnv(), BERTH_STEP_ARGV: 'true' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'berth: warning: from the second answer\n');
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[1]!.req, calls[0]!.req);
  });

  it('with no retry (BERTH_HOOK_RETRY_SECONDS=0) fails a recovering berthd itself, asking once', async () => {
    calls.length = 0;
    handlers = { StepEpilogue: () => ({ error: { code: grpc.status.UNAVAILABLE, details: 'berthd on n9 is recovering', metadata: { 'x-berth-error-code': 'AGENT_UNAVAILABLE' } } }) };
    const r = await run('step-epilog', { ...baseEnv(), BERTH_HOOK_RETRY_SECONDS: '0' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'berth: job 5 step 0 on n9: berthd on n9 is recovering\n');
    assert.equal(calls.length, 1);
  });

  it('hands an unreachable berthd to the Node hook (nothing was sent)', async () => {
    const env = { ...baseEnv(), SLURMD_NODENAME: 'n8', BERTH_HOOK_RETRY_SECONDS: '0' };
    const r = await run('step-epilog', env);
    assert.equal(r.code, 1);
    // the Node hook's words (agent-client.ts describeGrpcError), not berth-hook's
    assert.match(r.stderr, /^berth: job 5 step 0 on n8: berthd on n8 is not reachable at .*n8\/admin\.sock \(No connection established/);
  });

  it('hands a --container-* value the Node hook refuses to it, without asking berthd', async () => {
    const refused: Record<string, string>[] = [
      { BERTH_CONTAINER_MOUNTS: 'relative:/data' }, { BERTH_CONTAINER_MOUNTS: '/a:/b:ro+rw' }, { BERTH_CONTAINER_MOUNTS: '/a:/b:slave+private' },
      { BERTH_CONTAINER_MOUNTS: '/a:/b:shared' }, { BERTH_CONTAINER_MOUNTS: '/a:/b:ro+' }, { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:rslave' },
      { BERTH_CONTAINER_MOUNTS: 'tmpfs' }, { BERTH_CONTAINER_MOUNTS: '/a:/b:nosuid' },
      { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:huge=within_size' }, { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:size=0' }, { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:size=50%' },
      { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:uid=0' }, { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:mode=8777' }, { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:size=1m+size=2m' },
      { BERTH_CONTAINER_MOUNTS: '/a:/b:size=1m' }, { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:size=' }, { BERTH_CONTAINER_NAME: 'n1:no_create' }, { BERTH_CONTAINER_NAME: ':exec' },
      { BERTH_CONTAINER_UNSHARE: 'foo' }, { BERTH_CONTAINER_UNSHARE: 'net,foo' }, { BERTH_CONTAINER_UNSHARE: 'net,' }, { BERTH_CONTAINER_UNSHARE: 'network' },
    ];
    for (const extra of refused) {
      calls.length = 0;
      const r = await run('step-prolog', { ...baseEnv(), ...extra, BERTH_STEP_ARGV: 'true' });
      assert.equal(r.code, 1, JSON.stringify(extra));
      assert.match(r.stderr, /^berth: job 5 step 0 on n9: (mount|--container)/, JSON.stringify(extra));
      assert.equal(calls.length, 0);
    }
  });

  it('answers slurmd\'s prolog and epilog of a job without a container itself, as berth\'s CLI does, and asks berthd for any other', async () => {
    mkdirSync(path.join(dir, 'run', 'n9', 'tasks'), { recursive: true });
    writeFileSync(path.join(dir, 'run', 'n9', 'tasks', '7.0'), '{}');
    const cases: [string, Record<string, string>][] = [
      ['prolog', {}],
      ['prolog', { SPANK_BERTH_CONTAINER_IMAGE: ' ' }],
      ['prolog', { SPANK_BERTH_CONTAINER_IMAGE: '', SPANK__SLURM_SPANK_OPTION_berth_container_image: 'img' }],
      ['prolog', { SPANK__SLURM_SPANK_OPTION_berth_container_image: 'img' }],
      ['prolog', { SPANK_BERTH_CONTAINER_IMAGE: 'alpine:3' }],
      ['epilog', {}],
      ['epilog', { SPANK_BERTH_CONTAINER_IMAGE: 'alpine:3' }],
      ['epilog', { SLURM_JOB_ID: '7' }],
      ['epilog', { SLURM_JOB_ID: '70' }],
    ];
    handlers = {};
    for (const [kind, extra] of cases) {
      calls.length = 0;
      const env = { ...baseEnv(), ...extra };
      const nodeLoadsTheHook = containerImage(env) !== '' || (kind === 'epilog' && hasStepFiles(env));
      // a berth that is not there: handing over fails, saying so; the epilog asks berthd itself
      const r = await run(kind, env, path.join(dir, 'no-berth'));
      assert.equal(r.code, 0, `${kind} ${JSON.stringify(extra)}: ${r.stderr}`);
      assert.deepEqual(calls.map((c) => c.method), nodeLoadsTheHook ? [kind === 'epilog' ? 'JobEpilogue' : 'JobPrologue'] : []);
    }
  });

  it('sends the Node hook\'s JobEpilogue and says berthd\'s refusal as it does', async () => {
    const env = { ...baseEnv(), SPANK_BERTH_CONTAINER_IMAGE: ' alpine:3 ' };
    calls.length = 0;
    handlers = {};
    assert.deepEqual(await run('epilog', env), { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(calls.map((c) => c.req), [asNodeSends('JobEpilogue', { jobId: '5' })]);
    for (const details of ['dockerd could not remove container berth-5-n9', "image 'alpine:3' is still in use"]) {
      calls.length = 0;
      handlers = { JobEpilogue: () => ({ error: { code: grpc.status.INTERNAL, details, metadata: { 'x-berth-error-code': 'ENGINE_FAILED', 'x-berth-fault': 'node' } } }) };
      const r = await run('epilog', env);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `berth epilog: job 5 on n9${details.includes("'alpine:3'") ? '' : ", image 'alpine:3'"}: ${details}\n`);
      assert.equal(calls.length, 1);
    }
  });

  it('hands the epilog of a job with --container-save to the Node hook (the first node of the job saves)', async () => {
    calls.length = 0;
    handlers = {};
    const env = { ...baseEnv(), SPANK_BERTH_CONTAINER_IMAGE: 'alpine:3', SPANK_BERTH_CONTAINER_SAVE: ' registry.example/me/saved:1 ', SLURM_JOB_NODELIST: 'n[9-10]' };
    const r = await run('epilog', env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(calls.map((c) => c.req), [asNodeSends('JobEpilogue', { jobId: '5', saveImage: 'registry.example/me/saved:1' })]);
  });

  it('hands a recovering berthd at the epilog to the Node hook, which asks again', async () => {
    calls.length = 0;
    let n = 0;
    handlers = { JobEpilogue: () => (n++ === 0 ? { error: { code: grpc.status.UNAVAILABLE, details: 'berthd on n9 is recovering', metadata: { 'x-berth-error-code': 'AGENT_UNAVAILABLE' } } } : { value: {} }) };
    const r = await run('epilog', { ...baseEnv(), SPANK_BERTH_CONTAINER_IMAGE: 'alpine:3' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(calls.map((c) => c.method), ['JobEpilogue', 'JobEpilogue']);
  });

  // ---- the job's prologue (hook.ts runHook('prolog')) ----
  const jobEnv = (extra: Record<string, string> = {}): Record<string, string> => {
    const env: Record<string, string> = { ...baseEnv(), SPANK_BERTH_CONTAINER_IMAGE: ' alpine:3 ', ...extra };
    delete env.SLURM_STEP_ID;
    return env;
  };

  const jobPrologEnvs: Record<string, string>[] = [
    {},
    { SLURM_JOB_NODELIST: 'n9', SLURM_JOB_NUM_NODES: '1', SLURM_JOB_CPUS_PER_NODE: '4', SLURM_MEM_PER_NODE: '2048', SLURM_JOB_WORK_DIR: '/home/alice/w', SLURM_JOB_PARTITION: 'batch', SLURM_JOB_ACCOUNT: 'physics' },
    // this node's count by its place in the node list: n9 is the 4th of n[1-3,9],m7
    { SLURM_JOB_NODELIST: 'n[1-3,9],m7', SLURM_JOB_NUM_NODES: '5', SLURM_JOB_CPUS_PER_NODE: '2(x3),6,1', SLURM_MEM_PER_CPU: '100' },
    { SLURM_JOB_NODELIST: 'm7,n[8-10]', SLURM_JOB_CPUS_PER_NODE: '2(x2),1,3' },
    { SLURM_JOB_NODELIST: ' a1 , n[07-10] ', SLURMD_NODENAME: 'n09', SLURM_JOB_CPUS_PER_NODE: '1,2(x2),8', SLURM_MEM_PER_CPU: '512.7' },
    { SLURM_JOB_NODELIST: 'n[07-10]', SLURMD_NODENAME: 'n9', SLURM_JOB_CPUS_PER_NODE: '3,2(x2),8' },
    { SLURM_JOB_NODELIST: 'n[1-010]', SLURMD_NODENAME: 'n10', SLURM_JOB_CPUS_PER_NODE: '1(x9),7' },
    { SLURM_JOB_NODELIST: 'gpu[1-2]-ib,n[9]', SLURM_JOB_CPUS_PER_NODE: '1(x2),5', SLURM_MEM_PER_NODE: '0', SLURM_MEM_PER_CPU: '10' },
    { SLURM_NODELIST: 'x,n9', SLURM_JOB_CPUS_PER_NODE: '7,junk,9' },
    { SLURM_JOB_NODELIST: '', SLURM_NODELIST: 'x,n9', SLURM_JOB_CPUS_PER_NODE: '7,9' },
    { SLURM_JOB_NODELIST: 'other[1-4]', SLURM_JOB_CPUS_PER_NODE: '5,6' },
    { SLURM_CPUS_ON_NODE: ' 12 ', SLURM_JOB_CPUS_PER_NODE: '2', SLURM_MEM_PER_CPU: '1e3', SLURM_JOB_NUM_NODES: '2.9' },
    { SLURM_CPUS_ON_NODE: '-3', SLURM_JOB_CPUS_PER_NODE: '2(x0),4', SLURM_MEM_PER_NODE: 'Infinity', SLURM_MEM_PER_CPU: '7', SLURM_JOB_NUM_NODES: 'two' },
    { SLURM_JOB_CPUS_PER_NODE: '2(x', SLURM_MEM_PER_NODE: '.5e4' },
    {
      SPANK_BERTH_CONTAINER_IMAGE: 'registry.example/img@sha256:' + 'b'.repeat(64), SPANK_BERTH_CONTAINER_IMAGE_REQUESTED: ' img:1 ', SLURM_JOB_USER: 'jösé',
      SPANK_BERTH_CONTAINER_MOUNTS: '/scratch//me/:/data:ro,/opt,tmpfs:/t', SPANK_BERTH_CONTAINER_WORKDIR: '/w/', SPANK_BERTH_CONTAINER_ENV: 'A,B,A',
      SPANK_BERTH_CONTAINER_NAME: 'c1:exec', SPANK_BERTH_CONTAINER_MOUNT_HOME: 'no', SPANK_BERTH_CONTAINER_READONLY: 'Y',
      SPANK_BERTH_CONTAINER_UNSHARE: 'uts,ipc,net',
      // the step hooks' variables are not the job's
      BERTH_CONTAINER_MOUNTS: '/x:/y', BERTH_CONTAINER_NAME: 'other', BERTH_CONTAINER_UNSHARE: 'net',
    },
    { SPANK_BERTH_CONTAINER_IMAGE: undefined as unknown as string, SPANK__SLURM_SPANK_OPTION_berth_container_image: 'busybox' },
  ];

  for (const extra of jobPrologEnvs) {
    it(`sends the Node hook's JobPrologue request for ${JSON.stringify(extra)}`, async () => {
      calls.length = 0;
      handlers = {};
      const env = jobEnv(extra);
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
      const r = await run('prolog', env, path.join(dir, 'no-berth'));
      assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
      assert.equal(calls.length, 1);
      assert.deepEqual(calls[0]!.req, asNodeSends('JobPrologue', prologueRequest(env)));
    });
  }

  it('hands a node list or figure it does not read as Node does to the Node hook, before asking', async () => {
    const odd: Record<string, string>[] = [
      { SLURM_JOB_NODELIST: 'r[1-2]n[1-2]' }, { SLURM_JOB_NODELIST: 'n[1-3' }, { SLURM_JOB_NODELIST: 'n[a-c]' }, { SLURM_JOB_NODELIST: 'n[3-1]' },
      { SLURM_JOB_CPUS_PER_NODE: '1234567890123456' }, { SLURM_MEM_PER_NODE: '0x10' }, { SLURM_JOB_UID: '' }, { SLURM_JOB_ID: '5a' },
      { SPANK_BERTH_CONTAINER_MOUNTS: 'relative:/x' }, { SPANK_BERTH_CONTAINER_UNSHARE: 'pid' }, { BERTH_PROLOG_TIMEOUT_SECONDS: '0.5' },
    ];
    handlers = {};
    for (const extra of odd) {
      calls.length = 0;
      const r = await run('prolog', jobEnv(extra), path.join(dir, 'no-berth'));
      assert.equal(r.code, 1, JSON.stringify(extra));
      assert.match(r.stderr, /cannot run .*no-berth/, JSON.stringify(extra));
      assert.equal(calls.length, 0, JSON.stringify(extra));
    }
  });

  /** berth-hook and the Node hook, each against the same answers: what they print and how they exit */
  async function bothHooks(env: Record<string, string>, answer: () => Handler) {
    calls.length = 0;
    handlers = { JobPrologue: answer() };
    const native = await run('prolog', env);
    const nativeCalls = calls.length;
    calls.length = 0;
    handlers = { JobPrologue: answer() };
    const node = await run('prolog', env, path.join(dir, 'berth'), true);
    return { native, node, nativeCalls, nodeCalls: calls.length };
  }

  it('says a job fault as the Node hook does and exits 0 (the node stays in service), asking once', async () => {
    for (const details of ["image 'alpine:3' not found in registry.example (manifest unknown)", 'job 5: you may not use this image (100%, ü)', '']) {
      const error = { code: grpc.status.FAILED_PRECONDITION, details, metadata: { 'x-berth-error-code': 'IMAGE_NOT_FOUND', 'x-berth-fault': 'job' } };
      const { native, node, nativeCalls } = await bothHooks(jobEnv(), () => () => ({ error }));
      assert.deepEqual(native, node);
      assert.equal(native.code, 0);
      assert.match(native.stderr, /^berth prolog: job 5 on n9.*\[a job fault \(IMAGE_NOT_FOUND\): the job's steps fail with this reason; the node stays in service\]\n$/);
      assert.equal(nativeCalls, 1);
    }
  });

  it('drains the node for a node fault as the Node hook does and exits 1, without asking again', async () => {
    const answers: Answer['error'][] = [
      { code: grpc.status.INTERNAL, details: 'job 5: dockerd refused to create the container', metadata: { 'x-berth-error-code': 'ENGINE_FAILED', 'x-berth-fault': 'node' } },
      { code: grpc.status.FAILED_PRECONDITION, details: "n9 is drained for container jobs: maintenance; image 'alpine:3'", metadata: { 'x-berth-error-code': 'NODE_DRAINED' } },
      { code: grpc.status.INTERNAL, details: 'no berth code' },
      { code: grpc.status.DEADLINE_EXCEEDED, details: 'pull took too long', metadata: { 'x-berth-error-code': 'TIMEOUT' } },
    ];
    for (const error of answers) {
      const { native, node, nativeCalls, nodeCalls } = await bothHooks(jobEnv(), () => () => ({ error }));
      assert.deepEqual(native, node, error!.details);
      assert.equal(native.code, 1);
      // outside Slurm neither touches the node: the line says so
      assert.match(native.stderr, /\[a node fault \([A-Z_]+\): the node is drained; could not drain n9 with berth's reason \(the hook was not run by slurmd or slurmstepd\); slurmd drains it with "Prolog error"\]\n$/);
      assert.equal(nativeCalls, 1);
      assert.equal(nodeCalls, 1);
    }
  });

  it('hands a recovering berthd (AGENT_UNAVAILABLE) at the prolog to the Node hook, which asks again with the same request', async () => {
    calls.length = 0;
    let n = 0;
    handlers = { JobPrologue: () => (n++ === 0 ? { error: { code: grpc.status.UNAVAILABLE, details: 'berthd on n9 is recovering', metadata: { 'x-berth-error-code': 'AGENT_UNAVAILABLE', 'x-berth-fault': 'node' } } } : { value: {} }) };
    const r = await run('prolog', jobEnv({ SLURM_JOB_NODELIST: 'n[8-9]', SLURM_JOB_CPUS_PER_NODE: '1,3' }));
    assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(calls.map((c) => c.method), ['JobPrologue', 'JobPrologue']);
    assert.deepEqual(calls[1]!.req, calls[0]!.req);
  });

  it('with no retry fails a recovering berthd at the prolog itself, as the Node hook does, asking once', async () => {
    const error = { code: grpc.status.UNAVAILABLE, details: 'berthd on n9 is recovering', metadata: { 'x-berth-error-code': 'AGENT_UNAVAILABLE' } };
    const { native, node, nativeCalls } = await bothHooks(jobEnv({ BERTH_HOOK_RETRY_SECONDS: '0' }), () => () => ({ error }));
    assert.deepEqual(native, node);
    assert.equal(native.code, 1);
    assert.equal(nativeCalls, 1);
  });

  it('hands an unreachable berthd at the prolog to the Node hook (nothing was sent)', async () => {
    const r = await run('prolog', jobEnv({ SLURMD_NODENAME: 'n8', BERTH_HOOK_RETRY_SECONDS: '0' }));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^berth prolog: job 5 on n8, image 'alpine:3': berthd on n8 is not reachable at .*n8\/admin\.sock \(No connection established.*\[a node fault \(AGENT_UNAVAILABLE\)/);
  });

  it('hands SLURM_JOB_UID missing to the Node hook, which says why', async () => {
    calls.length = 0;
    const env = jobEnv();
    delete env.SLURM_JOB_UID;
    const r = await run('prolog', env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^berth prolog: job 5: SLURM_JOB_UID\/SLURM_JOB_GID missing/);
    assert.equal(calls.length, 0);
  });

  it('begins a node fault\'s drain reason with the causes of shared/fault-class.ts (berth_faults.h is current)', () => {
    assert.equal(readFileSync(FAULTS_HEADER_PATH, 'utf8'), renderFaultsHeader());
  });
});
