// The Docker request model (docker-request/request.ts): one request, decoded once as dockerd
// decodes it, and the same object read by the site policy, the private-image gate and the
// effect gate.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Authorizer } from '../../services/agent/authz/authorizer';
import type { JobRecord } from '../../services/agent/jobs/job-record';
import { silentLogger } from '../../services/agent/logger';
import { mapAction } from '../../services/agent/docker-request/actions';
import { BodyObject } from '../../services/agent/docker-request/body';
import { JsonSyntaxError } from '../../services/agent/docker-request/json-text';
import { DockerRequest } from '../../services/agent/docker-request/request';
import { PolicyEngine } from '../../services/agent/policy/engine';
import { parsePolicyFile } from '../../services/agent/policy/parse-policy';

const asked = (method: string, uri: string, body?: string, contentType?: string) => new DockerRequest({ method, uri, body, contentType }, mapAction(method, uri));

describe('a Docker request', () => {
  it('maps its action and reads its query as dockerd does', () => {
    const r = asked('POST', '/v1.41/images/create?fromImage=a%2Fb&tag=1&tag=2');
    assert.equal(r.action, 'image_create');
    assert.equal(r.mapped?.apiVersion, '1.41');
    assert.deepEqual({ ...r.query }, { fromImage: ['a/b'], tag: ['1', '2'] });
    assert.equal(asked('POST', '/images/create?fromImage=x;y').query, undefined, "a ';' in the query is malformed to Go");
    assert.equal(asked('GET', '/nowhere').action, 'unknown');
  });

  it('decodes its body once, as Go does: keys folded, the last duplicate wins', () => {
    const r = asked('POST', '/containers/create', '{"hostconfig":{"Privileged":false},"HostConfig":{"Privileged":true},"iMaGe":"a:1"}');
    const body = r.body;
    assert.ok(body instanceof BodyObject);
    assert.equal(r.body, body, 'the same decoded body every time');
    const hc = body.get('HostConfig')?.value;
    assert.ok(hc instanceof BodyObject);
    assert.equal(hc.get('privileged')?.value, true);
    assert.equal(r.createImage, 'a:1');
  });

  it('has no body when dockerd passed none, and throws the same syntax error for one that is not JSON', () => {
    assert.equal(asked('POST', '/containers/create').body, undefined);
    assert.equal(asked('POST', '/containers/create', '  ').createImage, undefined);
    const bad = asked('POST', '/containers/create', '{"Image":');
    assert.throws(() => bad.body, JsonSyntaxError);
    assert.throws(() => bad.body, JsonSyntaxError);
    assert.equal(bad.createImage, undefined, 'an unreadable body is the policy\'s to refuse');
  });

  it('is judged by the engine from its decoded body', () => {
    const set = parsePolicyFile('{"name":"p","users":["*"],"actions":["container_create"],"deny_payloads":["Privileged"]}', 'p.json');
    const engine = new PolicyEngine(set);
    const ctx = { user: 'alice', groups: [] };
    const r = asked('POST', '/containers/create', '{"Image":"a:1","hostconfig":{"privileged":true}}', 'application/json');
    const d = engine.decide({ action: r.action, bodyText: r.bodyText, docker: r, query: r.query }, ctx);
    assert.equal(d.allow, false);
    assert.match(d.reason, /^hostconfig\.privileged=true is not allowed$/, "the field as the user wrote it, found under a folded key");
    const bad = asked('POST', '/containers/create', '{"Image":', 'application/json');
    assert.match(engine.decide({ action: bad.action, bodyText: bad.bodyText, docker: bad, query: bad.query }, ctx).reason, /the request body is not JSON dockerd and berth read alike/);
  });
});

describe('the AuthZ plugin and the request', () => {
  it('hands one decoded request to the policy, the private-image gate and the effect gate', async () => {
    const job: JobRecord = {
      jobId: '10', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'r/x:1', imageDigest: 'r/x@sha256:1', workDir: '/home/alice', startTime: '',
      containerId: 'a'.repeat(64), containerName: 'berth-n1-job-10', state: 'RUNNING', endTime: '', error: '', steps: [], userContainers: [],
    };
    const seen: DockerRequest[] = [];
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const a = new Authorizer({
      node: 'n1', mapAction,
      decide: (r) => (seen.push(r), { allow: true, policy: 'p', action: r.action, reason: 'allowed' }),
      formatDenial: (v) => v.reason,
      jobFromCertificate: () => ({ user: 'alice', jobId: '10' }),
      jobs: { get: () => job, list: () => [job], addUserContainer: () => undefined, addUserVolume: () => undefined },
      contextFor: async () => ({ user: 'alice', groups: [] }),
      container: async () => undefined,
      execContainer: async () => undefined,
      imageRefusal: async (r) => (seen.push(r), undefined),
      effects: { check: async (r) => (seen.push(r), undefined) },
      audit: { write: () => undefined },
      log: silentLogger(),
    });
    const body = '{"Image":"a:1"}';
    const answer = await a.request({ user: 'alice', authnMethod: 'TLS', method: 'POST', uri: '/v1.41/containers/create', body, bodyBytes: body.length, headers: { 'content-length': String(body.length), 'content-type': 'application/json' }, peerCertificates: [cert] });
    assert.deepEqual(answer, { Allow: true });
    assert.equal(seen.length, 3);
    assert.ok(seen.every((r) => r === seen[0]), 'one request object for all three');
    assert.equal(seen[0]!.createImage, 'a:1');
  });
});
