import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { silentLogger } from '../../services/agent/logger';
import { mapAction } from '../../services/agent/docker-request/actions';
import { DockerRequest } from '../../services/agent/docker-request/request';
import { SitePolicy } from '../../services/agent/policy/site-policy';
import type { PolicyContext } from '../../services/agent/policy/policy-types';

const ALICE: PolicyContext = {
  user: 'alice', groups: ['alice'],
  job: { jobId: '42', uid: 2001, gid: 2001, cpus: 2, memoryBytes: 0, devices: [], mountPrefixes: [], groupIds: [] },
};

/** a request as the AuthZ plugin hands it to the policy */
function through(method: string, uri: string, body: string | undefined, contentType: string | undefined): DockerRequest {
  return new DockerRequest({ method, uri, body, contentType }, mapAction(method, uri));
}

function sitePolicy(): { policy: SitePolicy; file: string } {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-site-policy-')), 'hpc-default.json');
  copyFileSync(path.join(import.meta.dirname, '..', '..', 'policies', 'hpc-default.json'), file);
  const policy = new SitePolicy(file, silentLogger(), { registries: ['127.0.0.1:5000'] });
  policy.load();
  return { policy, file };
}

describe('site policy: what the AuthZ plugin and berthd call', () => {
  it('reads the query from the RequestURI as dockerd does: the first of repeated values is the one pulled', () => {
    const { policy } = sitePolicy();
    const uri = '/v1.41/images/create?fromImage=docker.io%2Fevil&fromImage=127.0.0.1:5000/x';
    const m = policy.mapAction('POST', uri)!;
    const d = policy.decide(through('POST', uri, undefined, 'text/plain'), ALICE);
    assert.equal(d.allow, false);
    assert.match(policy.formatDenial(d), /^policy 'hpc-default' denies image_create: query parameter fromImage is given 2 times with different values/);
    assert.equal(policy.decide(through('POST', '/images/create?fromImage=127.0.0.1%3A5000%2Fx&tag=1', undefined, undefined), ALICE).allow, true);
  });

  it('refuses a query dockerd would read differently', () => {
    const { policy } = sitePolicy();
    const d = policy.decide(through('POST', '/images/create?fromImage=127.0.0.1:5000/x;fromImage=evil', undefined, undefined), ALICE);
    assert.deepEqual([d.allow, d.policy], [false, 'berth']);
    assert.match(d.reason, /query string is malformed/);
  });

  it("admits berthd's own requests with berth's labels, which a user may not send", () => {
    const { policy } = sitePolicy();
    const body = { User: '2001:2001', Image: '127.0.0.1:5000/x@sha256:' + 'a'.repeat(64), Labels: { 'io.berth.job.id': '42' }, HostConfig: { SecurityOpt: ['no-new-privileges'], NanoCpus: 2e9 } };
    assert.equal(policy.admit('container_create', body, ALICE, { name: 'berth-n1-job-42' }).allow, true);
    const d = policy.decide(through('POST', '/containers/create?name=berth-n1-job-42', JSON.stringify(body), 'application/json'), ALICE);
    assert.match(policy.formatDenial(d), /^policy 'berth' denies container_create: the container name berth-n1-job-42 is not allowed/);
  });

  it('follows reloads, and keeps the policy in force when the new file is bad', () => {
    const { policy, file } = sitePolicy();
    writeFileSync(file, '{"name":"pings-only","users":["*"],"actions":["docker_ping"]}');
    assert.equal(policy.reload(), true);
    assert.equal(policy.decide(through('GET', '/containers/json', undefined, undefined), ALICE).policy, 'pings-only');
    writeFileSync(file, '{"name":"broken","users":["*"],"actions":["("]}');
    assert.equal(policy.reload(), false);
    const d = policy.decide(through('GET', '/containers/json', undefined, undefined), ALICE);
    assert.deepEqual([d.allow, d.policy], [false, 'pings-only']);
    policy.close();
  });
});
