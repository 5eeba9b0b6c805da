import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditRecord } from '../../services/agent/authz/audit-log';
import { Authorizer, type AuthorizerDeps, type MappedAction } from '../../services/agent/authz/authorizer';
import { parseAuthzRequest, type AuthzRequest } from '../../services/agent/authz/plugin-protocol';
import type { JobRecord } from '../../services/agent/jobs/job-record';
import { silentLogger } from '../../services/agent/logger';
import { mapAction } from '../../services/agent/docker-request/actions';

function job(over: Partial<JobRecord>): JobRecord {
  return {
    jobId: '10', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'r/x:1', imageDigest: 'r/x@sha256:1', workDir: '/home/alice', startTime: '',
    containerId: 'a'.repeat(64), containerName: 'berth-n1-job-10', state: 'RUNNING', endTime: '', error: '', steps: [], userContainers: [], ...over,
  };
}

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function harness() {
  const jobs = new Map<string, JobRecord>([
    ['10', job({})],
    ['11', job({ jobId: '11', uid: 2002, gid: 2002, user: 'bob', containerId: 'b'.repeat(64) })],
    ['12', job({ jobId: '12', state: 'ENDED' })],
  ]);
  const audit: AuditRecord[] = [];
  const containers = new Map([['a'.repeat(64), '10'], ['b'.repeat(64), '11'], ['c'.repeat(64), '']]);
  const certs = new Map([[CERT, { user: 'alice', jobId: '10' }]]);
  const deps: AuthorizerDeps = {
    node: 'n1',
    mapAction: (method, uri): MappedAction | undefined => {
      const p = uri.split('?')[0]!;
      if (method === 'GET' && p === '/v1.41/containers/json') return { action: 'container_list', readonly: true };
      if (method === 'POST' && p === '/v1.41/containers/create') return { action: 'container_create', readonly: false };
      const m = p.match(/^\/v1\.41\/containers\/([^/]+)\/(stop|json)$/);
      if (m) return { action: m[2] === 'stop' ? 'container_stop' : 'container_inspect', readonly: m[2] === 'json', containerId: m[1] };
      const e = p.match(/^\/v1\.41\/exec\/([^/]+)\/start$/);
      if (e) return { action: 'exec_start', readonly: false, execId: e[1] };
      return undefined;
    },
    decide: ({ action, bodyText }) => (bodyText?.includes('Privileged')
      ? { allow: false, policy: 'hpc-default', action, reason: 'HostConfig.Privileged=true is not allowed' }
      : { allow: true, policy: 'hpc-default', action, reason: 'allowed' }),
    formatDenial: (v) => `policy '${v.policy}' denies ${v.action}: ${v.reason}`,
    jobFromCertificate: (pem) => certs.get(pem),
    jobs: {
      get: (id) => jobs.get(id),
      list: () => [...jobs.values()],
      addUserContainer: (id, c) => void jobs.get(id)!.userContainers.push(c),
      addUserVolume: (id, v) => void (jobs.get(id)!.userVolumes ??= []).push(v),
    },
    contextFor: async (j) => ({ user: j.user, groups: [], job: { jobId: j.jobId, uid: j.uid, gid: j.gid, cpus: 1, memoryBytes: 0, devices: [], mountPrefixes: [] } }),
    container: async (ref) => {
      const id = [...containers.keys()].find((k) => k === ref || k.startsWith(ref));
      return id ? { id, jobId: containers.get(id) || undefined } : undefined;
    },
    execContainer: async (execId) => (execId === 'e1' ? 'b'.repeat(64) : undefined),
    audit: { write: (r) => void audit.push(r) },
    log: silentLogger(),
  };
  return { authorizer: new Authorizer(deps), audit, jobs, containers };
}

/** a request as the docker CLI frames it: Content-Length on every POST, the body's length when there is one */
function req(over: Partial<AuthzRequest>): AuthzRequest {
  const base: AuthzRequest = { user: 'alice', authnMethod: 'TLS', method: 'GET', uri: '/v1.41/containers/json', body: undefined, headers: {}, peerCertificates: [CERT], ...over };
  const bodyBytes = base.body === undefined ? undefined : Buffer.byteLength(base.body);
  const framed: Record<string, string> = bodyBytes !== undefined ? { 'content-length': String(bodyBytes) } : base.method === 'POST' ? { 'content-length': '0' } : {};
  return { bodyBytes, ...base, headers: over.headers ?? framed };
}

describe('AuthZ plugin decisions', () => {
  it("allows dockerd's local root socket and audits it", async () => {
    const h = harness();
    assert.deepEqual(await h.authorizer.request(req({ user: '', authnMethod: '', peerCertificates: [] })), { Allow: true });
    assert.equal(h.audit[0]!.user, 'root');
    assert.equal(h.audit[0]!.allow, true);
  });

  it('refuses a TLS user without a berth job certificate, or whose certificate names someone else', async () => {
    const h = harness();
    const a = await h.authorizer.request(req({ peerCertificates: [] }));
    assert.equal(a.Allow, false);
    assert.match(a.Msg!, /presented no berth job certificate/);
    assert.equal((await h.authorizer.request(req({ user: 'bob' }))).Allow, false);
  });

  it('refuses a user whose job has ended, saying Docker access ends with the job', async () => {
    const h = harness();
    h.jobs.get('10')!.state = 'ENDED';
    const a = await h.authorizer.request(req({}));
    assert.equal(a.Allow, false);
    assert.match(a.Msg!, /user 'alice' has no running job 10 on node n1: Docker access ends with the job/);
    assert.equal(h.audit.at(-1)!.job, '10');
  });

  it('refuses unknown endpoints', async () => {
    const h = harness();
    const a = await h.authorizer.request(req({ method: 'POST', uri: '/v1.41/swarm/init' }));
    assert.match(a.Msg!, /POST \/v1\.41\/swarm\/init is not an API endpoint berth allows/);
  });

  it("allows the user's own job container, refuses another user's and unknown ones", async () => {
    const h = harness();
    assert.equal((await h.authorizer.request(req({ uri: `/v1.41/containers/${'a'.repeat(12)}/json` }))).Allow, true);
    const other = await h.authorizer.request(req({ method: 'POST', uri: `/v1.41/containers/${'b'.repeat(64)}/stop` }));
    assert.equal(other.Allow, false);
    assert.match(other.Msg!, /does not belong to your running jobs on node n1/);
    assert.match((await h.authorizer.request(req({ uri: '/v1.41/containers/nope/json' }))).Msg!, /container nope does not exist/);
    assert.match((await h.authorizer.request(req({ method: 'POST', uri: '/v1.41/exec/e1/start' }))).Msg!, /does not belong/);
  });

  it('passes the policy verdict through with its message, and audits the policy and reason', async () => {
    const h = harness();
    const a = await h.authorizer.request(req({ method: 'POST', uri: '/v1.41/containers/create', body: '{"HostConfig":{"Privileged":true}}' }));
    assert.deepEqual(a, { Allow: false, Msg: "policy 'hpc-default' denies container_create: HostConfig.Privileged=true is not allowed" });
    const last = h.audit.at(-1)!;
    assert.deepEqual([last.user, last.job, last.action, last.allow, last.policy], ['alice', '10', 'container_create', false, 'hpc-default']);
  });

  it('makes a container the user created part of their job, so they may act on it', async () => {
    const h = harness();
    const id = 'c'.repeat(64);
    assert.equal((await h.authorizer.request(req({ uri: `/v1.41/containers/${id}/json` }))).Allow, false);
    await h.authorizer.response(req({ method: 'POST', uri: '/v1.41/containers/create', responseStatus: 201, responseBody: JSON.stringify({ Id: id, Warnings: [] }) }));
    assert.deepEqual(h.jobs.get('10')!.userContainers, [id]);
    assert.equal((await h.authorizer.request(req({ uri: `/v1.41/containers/${id}/json` }))).Allow, true);
  });
});

describe('AuthZ plugin: what berth must see before it judges', () => {
  /** the harness with dockerd's real route table */
  const routed = (over: Partial<AuthorizerDeps> = {}) => {
    const h = harness();
    return { ...h, authorizer: new Authorizer({ ...(h.authorizer as unknown as { d: AuthorizerDeps }).d, mapAction, ...over }) };
  };
  const create = (over: Partial<AuthzRequest>) => req({ method: 'POST', uri: '/v1.41/containers/create', ...over });
  const denials: [string, Partial<AuthzRequest>, RegExp][] = [
    ['a body over 1 MiB dockerd kept back', { uri: `/v1.41/containers/${'a'.repeat(64)}/stop`, headers: { 'content-length': '1100027', 'content-type': 'application/json' } }, /did not show berth this request's body \(1100027 bytes/],
    ['a padded create', { method: 'POST', uri: '/v1.41/containers/create', headers: { 'content-length': String(2 << 20) } }, /did not show berth/],
    ['a form body behind a repeated Content-Type', { uri: `/v1.41/containers/${'a'.repeat(64)}/stop`, headers: { 'content-length': '12', 'content-type': 'application/json' } }, /did not show berth/],
    ['a chunked POST (Go drops the header: no Content-Length, no body)', { uri: `/v1.41/containers/${'a'.repeat(64)}/stop`, headers: {} }, /without a Content-Length header is not allowed/],
    ['a chunked PUT', { method: 'PUT', uri: `/v1.41/containers/${'a'.repeat(64)}/archive`, headers: {} }, /PUT request without a Content-Length/],
    ['a Transfer-Encoding header that reached the plugin', { uri: `/v1.41/containers/${'a'.repeat(64)}/stop`, headers: { 'transfer-encoding': 'chunked', 'content-length': '0' } }, /Transfer-Encoding header/],
    ['a Content-Length that is not one number', { uri: `/v1.41/containers/${'a'.repeat(64)}/stop`, headers: { 'content-length': '5, 5' } }, /not one decimal number/],
    ['a body that is not what Content-Length says', { ...{ method: 'POST' }, uri: '/v1.41/containers/create', body: '{}', bodyBytes: 2, headers: { 'content-length': '9' } }, /is not the 9 bytes/],
    ['API version 1.23 (start applies a HostConfig)', { uri: `/v1.23/containers/${'a'.repeat(64)}/stop` }, /API version 1\.23 is older than 1\.40/],
    ['API version 1.39', { uri: `/v1.39/containers/${'a'.repeat(64)}/stop` }, /API version 1\.39 is older than 1\.40/],
  ];
  for (const [what, over, why] of denials) {
    it(`denies ${what}, whatever the action`, async () => {
      const h = routed();
      const a = await h.authorizer.request(req({ method: 'POST', ...over }));
      assert.equal(a.Allow, false);
      assert.match(a.Msg!, why);
      assert.match(a.Msg!, /^berth denies /);
      assert.equal(h.audit.at(-1)!.policy, 'berth');
    });
  }

  it('allows what the docker CLI sends: Content-Length 0, a JSON body of its length, GET without one, no version prefix, 1.41', async () => {
    const h = routed();
    assert.equal((await h.authorizer.request(req({ method: 'POST', uri: `/v1.41/containers/${'a'.repeat(64)}/stop` }))).Allow, true);
    assert.equal((await h.authorizer.request(req({ method: 'POST', uri: `/containers/${'a'.repeat(64)}/stop` }))).Allow, true);
    assert.equal((await h.authorizer.request(create({ body: '{"Image":"x"}' }))).Allow, true);
    const own = `filters=${encodeURIComponent('{"label":{"io.berth.job.id=10":true}}')}`;
    assert.equal((await h.authorizer.request(req({ uri: `/v1.41/containers/json?${own}` }))).Allow, true);
    assert.equal((await h.authorizer.request(req({ uri: `/v1.40/containers/json?${own}` }))).Allow, true);
    assert.match((await h.authorizer.request(req({ uri: '/v1.41/containers/json' }))).Msg!, /listings show only your job's containers/);
    // a chunked body under 1 MiB: dockerd shows it whole
    assert.equal((await h.authorizer.request(create({ body: '{"Image":"x"}', headers: {} }))).Allow, true);
  });

  it('takes the site minimum', async () => {
    const a = routed({ minApiVersion: '1.41' }).authorizer;
    assert.match((await a.request(req({ uri: `/v1.40/containers/${'a'.repeat(64)}/json` }))).Msg!, /older than 1\.41/);
  });
});

describe('AuthZ plugin protocol', () => {
  it("reads dockerd's request: base64 body, peer certificates as base64 PEM, headers", () => {
    const r = parseAuthzRequest(JSON.stringify({
      User: 'alice', UserAuthNMethod: 'TLS', RequestMethod: 'post', RequestUri: '/v1.41/containers/create',
      RequestBody: Buffer.from('{"Image":"x"}').toString('base64'), RequestHeaders: { 'Content-Type': 'application/json' },
      RequestPeerCertificates: [Buffer.from(CERT).toString('base64')],
    }));
    assert.deepEqual([r.user, r.method, r.body, r.headers['content-type'], r.peerCertificates[0]], ['alice', 'POST', '{"Image":"x"}', 'application/json', CERT]);
  });

  it('has no body when dockerd sent none, and refuses what is not a request', () => {
    assert.equal(parseAuthzRequest('{"RequestMethod":"POST","RequestUri":"/x"}').body, undefined);
    assert.throws(() => parseAuthzRequest('[]'), /not a JSON object/);
    assert.throws(() => parseAuthzRequest('{"User":"a"}'), /RequestMethod or RequestUri missing/);
  });

  it('refuses a create the policy allows when the image is private to another user, and audits it as berth', async () => {
    const h = harness();
    const a = new Authorizer({
      ...(h.authorizer as unknown as { d: AuthorizerDeps }).d,
      imageRefusal: async (r, uid) => (r.createImage?.includes('secret') && uid === 2001 ? 'image secret is private' : undefined),
    });
    const create = (image: string) => req({ method: 'POST', uri: '/v1.41/containers/create', body: JSON.stringify({ Image: image }) });
    assert.deepEqual(await a.request(create('reg/secret@sha256:1')), { Allow: false, Msg: 'image secret is private' });
    assert.equal(h.audit.at(-1)!.policy, 'berth');
    assert.deepEqual(await a.request(create('reg/open:1')), { Allow: true });
  });
});
