// The error catalogue (shared/errors.ts): every code has a gRPC status and a fault class, the
// docs list it, every code berth can send is in it, the errors outside it are converted at a
// boundary before a caller sees them, and the precise codes land where they belong.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { NodeCertificateAuthority } from '../../services/agent/certs/node-ca';
import { ContainerFactory } from '../../services/agent/containers/container-factory';
import { JobService } from '../../services/agent/jobs/job-service';
import { checkPrologueRequest } from '../../services/agent/jobs/prologue-request';
import { makeAgentHandlers, type AgentServiceDeps } from '../../services/agent/server/agent-service';
import { toServiceError } from '../../services/agent/server/proto-mapping';
import { StepRunner } from '../../services/agent/steps/step-runner';
import { BerthError, ERROR_STATUS, type ErrorCode } from '../../services/shared/errors';
import { FAULT_METADATA_KEY, FAULTS, faultOf } from '../../services/shared/fault-class';
import { RegistryError } from '../../services/shared/images/registry-client';
import { classifyRegistryError } from '../../services/shared/images/registry-errors';
import { parseImageReference } from '../../services/shared/images/reference';
import { FakeIdentities, harness, prologueInput } from './fakes/helpers';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const CODES = Object.keys(ERROR_STATUS) as ErrorCode[];
const STATUS_NAME = new Map(Object.entries(grpc.status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v as number, k]));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    if (n === 'gen' || n === 'node_modules') return [];
    return statSync(p).isDirectory() ? sources(p) : n.endsWith('.ts') ? [p] : [];
  });
}
const SERVICES = sources(path.join(REPO, 'services')).map((file) => ({ file: path.relative(REPO, file), text: readFileSync(file, 'utf8') }));

describe('the error catalogue', () => {
  it('gives every code a gRPC status other than OK, and a fault class with its reason', () => {
    for (const code of CODES) {
      const s = ERROR_STATUS[code];
      assert.ok(STATUS_NAME.has(s) && (s as number) !== grpc.status.OK, `${code} has a gRPC status`);
      assert.ok(FAULTS[code].fault === 'job' || FAULTS[code].fault === 'node', `${code} has a fault class`);
      assert.equal(new BerthError(code, 'x').grpcStatus, s);
      const md = toServiceError(new BerthError(code, 'x')).metadata as grpc.Metadata;
      assert.equal(md.get('x-berth-error-code')[0], code);
      assert.equal(md.get(FAULT_METADATA_KEY)[0], faultOf(code));
    }
  });

  it('gives every code a doc comment in shared/errors.ts', () => {
    const text = readFileSync(path.join(REPO, 'services/shared/errors.ts'), 'utf8');
    for (const code of CODES) assert.match(text, new RegExp(`\\*/\\n  ${code}: status\\.`), `${code} has a /** ... */ above it`);
  });

  it('is the table docs/api.md shows, code for code and status for status', () => {
    const doc = readFileSync(path.join(REPO, 'docs/api.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Errors'), doc.indexOf('## Admin commands'));
    const rows = new Map([...section.matchAll(/^\| `([A-Z_]+)` \| ([A-Z_]+) \|/gm)].map((m) => [m[1]!, m[2]!]));
    assert.deepEqual([...rows.keys()].sort(), [...CODES].sort());
    for (const [code, name] of rows) assert.equal(name, STATUS_NAME.get(ERROR_STATUS[code as ErrorCode]), code);
  });

  it('holds every code that berthd throws and that the hooks drain with', () => {
    const used = new Set<string>();
    for (const { file, text } of SERVICES) {
      for (const m of text.matchAll(/new BerthError\(\s*'([A-Z_]+)'|drainReason\('([A-Z_]+)'|\? '([A-Z_]+)' : '([A-Z_]+)'/g)) {
        for (const c of m.slice(1)) if (c) {
          used.add(c);
          if (!/new BerthError|drainReason/.test(m[0]) && !Object.hasOwn(ERROR_STATUS, c)) continue; // a ternary of other strings
          assert.ok(Object.hasOwn(ERROR_STATUS, c), `${file}: ${c} is in the catalogue`);
        }
      }
    }
    // each code is used somewhere (TIMEOUT is the hooks' own, AGENT_UNAVAILABLE also theirs)
    for (const code of CODES) assert.ok(used.has(code) || SERVICES.some(({ text }) => text.includes(`'${code}'`)), `${code} is used`);
  });

  it('says, for every other Error subclass, where it is converted or why no caller sees it', () => {
    const others: string[] = [];
    for (const { file, text } of SERVICES) {
      for (const m of text.matchAll(/((?:\/\*\*[^]*?\*\/|\/\/[^\n]*)\n)?export class (\w+) extends Error\b/g)) {
        if (m[2] === 'BerthError') continue;
        others.push(m[2]!);
        assert.match(m[1] ?? '', /[Oo]utside the catalogue:/, `${file}: ${m[2]} says why it is outside the catalogue`);
      }
    }
    assert.ok(others.length >= 13, `found the Error subclasses (${others.join(', ')})`);
  });
});

describe('errors outside the catalogue, at their boundary', () => {
  it("turns a registry's error into a catalogue code", () => {
    const ref = parseImageReference('registry.site:5000/a/b:1');
    assert.equal(classifyRegistryError(ref, new RegistryError('manifest unknown, HTTP 404')).code, 'IMAGE_NOT_FOUND');
    assert.equal(classifyRegistryError(ref, new RegistryError('registry registry.site:5000 failed: HTTP 503; server gave HTTP response 503')).code, 'REGISTRY_UNAVAILABLE');
    assert.equal(classifyRegistryError(ref, new RegistryError('token service x returned no token')).code, 'PULL_FAILED');
  });

  it("turns a refused --container-* value into OPTIONS_INVALID, the job's fault", () => {
    assert.throws(() => checkPrologueRequest({ ...prologueInput(), options: { mounts: [], workdir: 'rel', envNames: [], name: '' } }),
      (e: unknown) => e instanceof BerthError && e.code === 'OPTIONS_INVALID' && faultOf(e.code) === 'job' && /--container-workdir 'rel' is not an absolute path/.test(e.message));
  });
});

describe('the precise codes', () => {
  it('keeps INVALID_REQUEST for a malformed prologue, which is the hook\'s (the node\'s)', () => {
    assert.throws(() => checkPrologueRequest({ ...prologueInput(), jobId: '4x' }), (e: unknown) => e instanceof BerthError && e.code === 'INVALID_REQUEST' && faultOf(e.code) === 'node');
  });

  it("refuses a job's own working directory that is not normalized as the job's fault: a user's --chdir never drains the node", () => {
    assert.throws(() => checkPrologueRequest({ ...prologueInput(), workDir: '/home/alice/../alice/run' }),
      (e: unknown) => e instanceof BerthError && e.code === 'OPTIONS_INVALID' && faultOf(e.code) === 'job'
        && /^job 42: working directory '\/home\/alice\/\.\.\/alice\/run' must be an absolute, normalized path; give sbatch or srun --chdir/.test(e.message));
  });

  it('refuses a Docker certificate for root as ROOT_JOB_REFUSED and an unusable user name as the job\'s fault', async () => {
    const ca = await NodeCertificateAuthority.loadOrCreate(mkdtempSync(path.join(os.tmpdir(), 'berth-ca-')), 'n1');
    const ok = { user: 'alice', uid: 2001, jobId: '5', notAfter: new Date(Date.now() + 3_600_000) };
    const code = (c: string, fault: string) => (e: unknown) => e instanceof BerthError && e.code === c && faultOf(e.code) === fault;
    await assert.rejects(ca.issueClientCertificate({ ...ok, uid: 0 }), code('ROOT_JOB_REFUSED', 'job'));
    await assert.rejects(ca.issueClientCertificate({ ...ok, uid: -1 }), code('INVALID_REQUEST', 'node'));
    await assert.rejects(ca.issueClientCertificate({ ...ok, user: 'alice,OU=job-1' }), code('USER_NAME_UNSUPPORTED', 'job'));
    await assert.rejects(ca.issueClientCertificate({ ...ok, notAfter: new Date(Date.now() - 60_000) }), code('JOB_NOT_RUNNING', 'job'));
    await assert.rejects(ca.issueClientCertificate({ ...ok, notAfter: new Date('nonsense') }), code('INVALID_REQUEST', 'node'));
  });

  it("keeps the code of a certificate refused in the prologue: a user's name never drains the node", async () => {
    const h = harness();
    const ca = await NodeCertificateAuthority.loadOrCreate(path.join(h.dir, 'ca'), 'n1');
    const d = (h.jobs as unknown as { d: ConstructorParameters<typeof JobService>[0] }).d;
    const fd = (h.factory as unknown as { d: ConstructorParameters<typeof ContainerFactory>[0] }).d;
    const odd = 'alice smith';
    const identities = { lookup: async (uid: number) => ({ ...(await new FakeIdentities().lookup(uid)), name: odd }) };
    const jobs = new JobService({
      ...d, factory: new ContainerFactory({ ...fd, identities }),
      dockerAccess: { grant: async (job, notAfter) => void await ca.issueClientCertificate({ user: job.user, uid: job.uid, jobId: job.jobId, notAfter }), revoke: () => undefined },
    });
    await assert.rejects(jobs.prologue(prologueInput({ user: odd })), (e: unknown) => e instanceof BerthError && e.code === 'USER_NAME_UNSUPPORTED' && faultOf(e.code) === 'job'
      && /^job 42: could not grant Docker access: Docker client certificate for job 42: user name 'alice smith' cannot be a certificate CN/.test(e.message));
    assert.equal(h.engine.containers.size, 0, 'nothing half-made is left');
  });

  it('refuses a prologue for a job id that another uid still holds as a node fault, JOB_ID_IN_USE', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    const table = (h.jobs as unknown as { d: { table: { get(id: string): { uid: number } | undefined } } }).d.table;
    table.get('42')!.uid = 3003;
    await assert.rejects(h.jobs.prologue(prologueInput()), (e: unknown) => e instanceof BerthError && e.code === 'JOB_ID_IN_USE' && faultOf(e.code) === 'node'
      && e.grpcStatus === grpc.status.ALREADY_EXISTS && /job 42 already has a container on n1 for uid 3003, not 2001; run the epilog for the old job first/.test(e.message));
  });

  it("refuses a step's missing directory as WORKDIR_MISSING, the job's", async () => {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput());
    const runner = new StepRunner(h.engine, h.ledger, h.log, [], () => undefined);
    h.engine.pathExists = async () => false;
    await assert.rejects(runner.start(job, { stepId: '0', taskId: 0, argv: ['true'], cwd: '/nowhere', env: [], tty: false }, { name: 'alice', home: '/' }, { stdout: () => undefined, stderr: () => undefined }),
      (e: unknown) => e instanceof BerthError && e.code === 'WORKDIR_MISSING' && faultOf(e.code) === 'job');
  });

  it('answers a step prologue to a berthd without container steps with NOT_SERVED_ON_NODE', async () => {
    const h = harness();
    const handlers = makeAgentHandlers('admin-socket', {
      jobs: h.jobs, node: 'n1', log: h.log, auth: { authenticate: async () => ({ kind: 'root' }) }, lifecycle: { assertServing: () => undefined }, drain: { assertAccepting: () => undefined },
    } as unknown as AgentServiceDeps);
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      (handlers.StepPrologue as grpc.handleUnaryCall<unknown, unknown>)({ request: { jobId: '42', stepId: '0' }, metadata: new grpc.Metadata(), getAuthContext: () => ({}) } as unknown as grpc.ServerUnaryCall<unknown, unknown>,
        (e) => resolve(e as grpc.ServiceError | null));
    });
    assert.equal(err?.code, grpc.status.UNIMPLEMENTED);
    assert.equal(err?.metadata?.get('x-berth-error-code')[0], 'NOT_SERVED_ON_NODE');
    assert.equal(err?.metadata?.get(FAULT_METADATA_KEY)[0], 'node');
    assert.match(err?.details ?? '', /this berthd does not launch container steps/);
  });
});
