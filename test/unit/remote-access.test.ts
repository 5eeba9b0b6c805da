import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { certificateIdentities, RemoteAccessPolicy } from '../../services/agent/auth/remote-access';
import { remoteRoles } from '../../services/agent/server/method-table';

const cert = (cn: string, san = '') => ({ subject: { CN: cn } as never, subjectaltname: san });

describe('remote access roles', () => {
  const policy = new RemoteAccessPolicy({ 'ops-ro': ['read'], 'spiffe://site/ops': ['admin'] }, remoteRoles());

  it('takes the identity from the CN or a DNS, URI or email SAN', () => {
    assert.deepEqual(certificateIdentities(cert('a', 'DNS:b.site, IP Address:10.0.0.1, URI:spiffe://site/ops, email:c@site')), ['a', 'b.site', 'spiffe://site/ops', 'c@site']);
    assert.deepEqual(certificateIdentities(undefined), []);
  });

  it('lets read call the queries and admin everything remote, by CN or SAN', () => {
    assert.equal(policy.authorize(cert('ops-ro'), 'GetStatus').identity, 'ops-ro');
    assert.equal(policy.authorize(cert('ops-ro'), 'ListContainers').identity, 'ops-ro');
    assert.equal(policy.authorize(cert('laptop', 'URI:spiffe://site/ops'), 'SetDrain').identity, 'spiffe://site/ops');
    assert.equal(policy.authorize(cert('laptop', 'URI:spiffe://site/ops'), 'ListJobs').identity, 'spiffe://site/ops', 'admin includes read');
  });

  it('says which role a method needs, and never serves the hooks or steps', () => {
    assert.throws(() => policy.authorize(cert('ops-ro'), 'PruneImages'), /PruneImages needs role 'admin'; identity 'ops-ro' has role\(s\) 'read'/);
    assert.throws(() => policy.authorize(cert('laptop', 'URI:spiffe://site/ops'), 'ExecStep'), /ExecStep is not served over TCP/);
    assert.throws(() => policy.authorize(cert('stranger', 'DNS:x'), 'GetStatus'), /client certificate \(stranger, x\) is signed by the site CA but names no client/);
  });
});
