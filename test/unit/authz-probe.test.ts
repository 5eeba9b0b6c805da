// The check that dockerd asks berth's AuthZ plugin at all: a /_ping with a fresh nonce that
// the plugin must have seen.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthzProbe, PROBE_PARAM } from '../../services/agent/authz/authz-probe';
import { BerthError } from '../../services/shared/errors';

const where = { plugin: 'berth-n1', docker: 'unix:///run/docker.sock' };

describe('AuthZ probe', () => {
  it('passes when the plugin saw berthd\'s request', async () => {
    let asked = '';
    const probe: AuthzProbe = new AuthzProbe(async (query) => {
      asked = new URLSearchParams(query).toString();
      probe.observe(`/v1.41/_ping?${asked}`);
    }, where);
    await probe.check();
    assert.match(asked, new RegExp(`^${PROBE_PARAM}=[0-9a-f]{32}$`));
  });

  it('is a node fault when dockerd answered without asking the plugin, saying what to do', async () => {
    const probe = new AuthzProbe(async () => undefined, where);
    await assert.rejects(probe.check(), (e: unknown) => e instanceof BerthError && e.code === 'NODE_CONFIG' && e.fault === 'node'
      && /does not ask berth's AuthZ plugin 'berth-n1'/.test(e.message) && /"authorization-plugins"/.test(e.message) && /berth resume/.test(e.message));
  });

  it('cannot be answered by a made-up nonce or an earlier one, and remembers nothing it was not waiting for', async () => {
    let earlier = '';
    const probe: AuthzProbe = new AuthzProbe(async (params) => {
      const query = new URLSearchParams(params).toString();
      // someone else's request with another nonce, and one replayed from an earlier check
      probe.observe(`/_ping?${PROBE_PARAM}=${'a'.repeat(32)}`);
      if (earlier) probe.observe(`/_ping?${earlier}`);
      if (!earlier) {
        earlier = query;
        probe.observe(`/_ping?${query}`);
      }
    }, where);
    await probe.check();
    await assert.rejects(probe.check(), (e: unknown) => e instanceof BerthError && e.code === 'NODE_CONFIG');
    for (let i = 0; i < 1000; i++) probe.observe(`/_ping?${PROBE_PARAM}=${i.toString(16).padStart(32, '0')}`);
    const inner = probe as unknown as { pending: Set<string>; seen: Set<string> };
    assert.equal(inner.pending.size + inner.seen.size, 0);
  });

  it('passes a dockerd failure through, as the engine\'s', async () => {
    const probe = new AuthzProbe(async () => { throw new Error('connect ENOENT /run/docker.sock'); }, where);
    await assert.rejects(probe.check(), /ENOENT/);
  });
});
