// One spelling of "which registry": Docker Hub's names, case, URLs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registryHost } from '../../services/shared/images/registry-host';
import { registryKey } from '../../services/shared/images/credentials';
import { normalizeRegistry, registryViolation } from '../../services/agent/policy/image-registry';

describe('registry host', () => {
  it('names Docker Hub one way, whatever it was called, and keeps other hosts as host[:port]', () => {
    for (const hub of ['', 'docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com', 'Docker.IO', 'https://index.docker.io/v1/']) {
      assert.equal(registryHost(hub), 'docker.io', JSON.stringify(hub));
    }
    assert.equal(registryHost('127.0.0.1:5000'), '127.0.0.1:5000');
    assert.equal(registryHost('https://Registry.Site:5000/v2/'), 'registry.site:5000');
  });

  it('is what credentials and the policy use, so they agree', () => {
    for (const r of ['registry.hub.docker.com', 'INDEX.docker.io', '127.0.0.1:5000']) assert.equal(registryKey(r), normalizeRegistry(r));
    assert.equal(registryViolation('alpine:3', ['registry.hub.docker.com']), undefined, 'Docker Hub by any name');
    assert.match(registryViolation('alpine:3', ['127.0.0.1:5000']) ?? '', /alpine:3 is from docker\.io/);
  });
});
