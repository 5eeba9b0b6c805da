// berth-hook submit-check (scripts/native/berth_submit_check.c) against berthd's real wiring of
// SubmitCheck on a user socket (agent-service.ts with the real munge authenticator and the real
// SubmitChecker): its request decodes, with the real service definition, to the variables the
// check reads; its munge credential is bound to SubmitCheck and names the user who ran it; it
// prints berthd's answer as `berth submit-check` prints its own; and with no socket, an old
// berthd (UNIMPLEMENTED) or an error answer it runs `berth submit-check` (from source here).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CallerAuthenticator, type Caller } from '../../services/agent/auth/caller';
import { NssIdentityResolver } from '../../services/agent/identity/nss';
import { makeAgentHandlers } from '../../services/agent/server/agent-service';
import type { AgentServiceDeps } from '../../services/agent/server/method-table';
import { SubmitChecker } from '../../services/agent/submit/submit-checker';
import { UnmungeVerifier } from '../../services/shared/munge';
import { SERVICE_NAME } from '../../services/shared/proto-names';
import { serviceDefinition } from '../../services/shared/service-definition';
import { DEFAULT_SITE_RULES_FILE, loadSiteRules } from '../../services/shared/site-rules';

const REPO = path.resolve(import.meta.dirname, '../..');
const NATIVE = path.join(REPO, 'scripts/native');
const def = serviceDefinition(SERVICE_NAME);
const root = process.getuid?.() === 0;
const mungeUp = spawnSync('munge', ['-n'], { stdio: 'ignore' }).status === 0;
const NOBODY = 65534;

type Result = { code: number | null; stdout: string; stderr: string };

describe('berth-hook submit-check', { skip: !root ? 'runs the hook as another user' : !mungeUp ? 'munged is not running' : false }, () => {
  let dir: string;
  let hook: string;
  const servers: grpc.Server[] = [];
  const asked: { caller: Caller; env: { name: string; value: string }[] }[] = [];

  const listen = async (node: string, handlers: grpc.UntypedServiceImplementation): Promise<void> => {
    const server = new grpc.Server();
    server.addService(def, handlers);
    mkdirSync(path.join(dir, 'run', node), { recursive: true, mode: 0o755 });
    const sock = path.join(dir, 'run', node, 'user.sock');
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${sock}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    chmodSync(sock, 0o666);
    servers.push(server);
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'berth-hook-submit-'));
    chmodSync(dir, 0o755);
    hook = path.join(dir, 'berth-hook');
    // as scripts/build-native.sh builds it
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', hook,
      ...['berth-hook.c', 'berth_hook_step.c', 'berth_hook_job.c', 'berth_hook_allocation.c', 'berth_hook_options.c', 'berth_hook_env.c',
        'berth_hook_faults.c', 'berth_grpc.c', 'berth_pb.c', 'berth_submit_check.c', 'berth_utf8.c'].map((f) => path.join(NATIVE, f)), '-lnghttp2', '-lm', '-ldl'], { stdio: ['ignore', 'ignore', 'inherit'] });
    writeFileSync(path.join(dir, 'berth'), `#!/bin/sh\nexec ${process.execPath} --import tsx ${path.join(REPO, 'services/cli/main.ts')} "$@"\n`, { mode: 0o755 });
    const checker = new SubmitChecker({ identities: new NssIdentityResolver(), siteRules: () => loadSiteRules(DEFAULT_SITE_RULES_FILE) });
    const deps = {
      node: 'n9', auth: new CallerAuthenticator(new UnmungeVerifier()),
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      submitCheck: {
        check: (caller: Caller, env: { name: string; value: string }[]) => {
          asked.push({ caller, env });
          return checker.check(caller, env);
        },
      },
    } as unknown as AgentServiceDeps;
    const real = makeAgentHandlers('user-socket', deps) as unknown as grpc.UntypedServiceImplementation;
    await listen('n9', { SubmitCheck: real.SubmitCheck! });
    await listen('n8', {}); // an older berthd: no SubmitCheck (UNIMPLEMENTED)
    await listen('n6', {
      SubmitCheck: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        asked.push({ caller: { kind: 'root' }, env: [] });
        cb({ code: grpc.status.UNAVAILABLE, details: 'berthd on n6 is recovering; try again shortly', name: 'Error', message: '' });
      },
    });
  });

  after(() => {
    for (const s of servers) s.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const envFor = (node: string, extra: Record<string, string>): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', SLURMD_NODENAME: node, BERTH_RUN_DIR: path.join(dir, 'run'), SLURM_JOB_ID: '12',
    BERTH_SUBMIT_FOR: 'step', UNRELATED: 'x', ...extra,
  });

  function run(argv: string[], env: Record<string, string>, uid = 0): Promise<Result> {
    return new Promise((resolve, reject) => {
      const c = spawn(argv[0]!, argv.slice(1), { env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], ...(uid ? { uid, gid: NOBODY } : {}) });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      c.once('error', reject);
      c.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }
  const viaHook = (env: Record<string, string>, uid = 0) => run([hook, `--berth=${path.join(dir, 'berth')}`, 'submit-check'], env, uid);
  const viaCli = (env: Record<string, string>, uid = 0) => run([path.join(dir, 'berth'), 'submit-check'], env, uid);

  const refusals: [string, Record<string, string>][] = [
    ['bad mount syntax', { BERTH_CONTAINER_IMAGE: 'img:1', BERTH_CONTAINER_MOUNTS: 'relative:/x' }],
    ['--container-remap-root', { BERTH_CONTAINER_IMAGE: 'img:1', BERTH_CONTAINER_REMAP_ROOT: '1' }],
    ['--container-name=NAME:exec for a new job', { BERTH_CONTAINER_NAME: 'c:exec', BERTH_SUBMIT_FOR: 'job' }],
    ['--container-name=NAME in a job', { BERTH_CONTAINER_NAME: 'c' }],
  ];

  it("sends the check's variables only, decoded with the real service definition, and a credential bound to SubmitCheck naming the user", async () => {
    asked.length = 0;
    const env = envFor('n9', { BERTH_CONTAINER_NAME: 'c', BERTH_CONTAINER_MOUNTS: '', PYXIS_CONTAINER_ENTRYPOINT: '0', BERTH_SITE_REGISTRIES: 'reg.example:5000' });
    const r = await viaHook(env, NOBODY);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(asked.length, 1);
    assert.deepEqual(asked[0]!.caller, { kind: 'user', uid: NOBODY, gid: NOBODY });
    const sent = Object.fromEntries(asked[0]!.env.map((e) => [e.name, e.value]));
    const expected = Object.fromEntries(Object.entries(env).filter(([k]) => /^(BERTH_|PYXIS_)/.test(k) || k === 'SLURM_JOB_ID'));
    assert.deepEqual(sent, expected);
    assert.equal(asked[0]!.env.length, Object.keys(expected).length, 'each variable once');
  });

  for (const [name, extra] of refusals) {
    it(`prints berthd's answer as berth submit-check prints its own: ${name}`, async () => {
      asked.length = 0;
      const env = envFor('n9', extra);
      const [hooked, cli] = [await viaHook(env, NOBODY), await viaCli(env, NOBODY)];
      assert.equal(asked.length, 1, 'berthd answered');
      assert.deepEqual(hooked, cli);
    });
  }

  it('runs berth submit-check when there is no socket (an srun on a host without berthd)', async () => {
    asked.length = 0;
    const env = envFor('n7', refusals[0]![1]);
    const [hooked, cli] = [await viaHook(env, NOBODY), await viaCli(env, NOBODY)];
    assert.equal(asked.length, 0);
    assert.equal(hooked.code, 1);
    assert.match(hooked.stderr, /not an absolute path/);
    assert.deepEqual(hooked, cli);
  });

  it('runs berth submit-check when berthd does not know SubmitCheck (UNIMPLEMENTED) or answers an error', async () => {
    for (const node of ['n8', 'n6']) {
      asked.length = 0;
      const env = envFor(node, refusals[1]![1]);
      const [hooked, cli] = [await viaHook(env, NOBODY), await viaCli(env, NOBODY)];
      assert.equal(asked.length, node === 'n6' ? 1 : 0, node);
      assert.equal(hooked.code, 1, node);
      assert.match(hooked.stderr, /--container-remap-root/, node);
      assert.deepEqual(hooked, cli, node);
    }
  });

  it('runs berth submit-check for a variable that is not UTF-8', async () => {
    asked.length = 0;
    const env = envFor('n9', { BERTH_CONTAINER_NAME: 'c' });
    const r = await run(['/bin/sh', '-c', `BERTH_CONTAINER_WORKDIR=$(printf '/w\\377') exec "$0" "$@"`, hook, `--berth=${path.join(dir, 'berth')}`, 'submit-check'], env, NOBODY);
    assert.equal(asked.length, 0, 'not sent to berthd');
    assert.equal(r.code, 0, r.stderr);
  });
});
