import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CachingIdentityResolver, type IdentityResolver, type UserIdentity } from '../../services/agent/identity/nss';
import { ALICE } from './fakes/helpers';

class Counting implements IdentityResolver {
  calls = 0;
  fail = false;
  async lookup(): Promise<UserIdentity> {
    this.calls++;
    if (this.fail) throw new Error('ldap down');
    return ALICE;
  }
}

describe('identity cache', () => {
  it('asks NSS once per uid within the TTL, again after it', async () => {
    let now = 0;
    const inner = new Counting();
    const c = new CachingIdentityResolver(inner, 1000, () => now);
    await Promise.all([c.lookup(2001), c.lookup(2001, 'alice')]);
    assert.equal(inner.calls, 1);
    now = 1500;
    await c.lookup(2001);
    assert.equal(inner.calls, 2);
  });

  it('does not keep failures, and still checks the name Slurm gave', async () => {
    const inner = new Counting();
    inner.fail = true;
    const c = new CachingIdentityResolver(inner);
    await assert.rejects(c.lookup(2001), /ldap down/);
    inner.fail = false;
    assert.equal((await c.lookup(2001)).name, 'alice');
    await assert.rejects(c.lookup(2001, 'mallory'), /uid 2001 is 'alice' on this node but Slurm says the job's user is 'mallory'/);
  });
});
