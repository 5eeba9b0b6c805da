// Registry credentials against the sandbox's htpasswd registry (127.0.0.1:5002) and n1's
// real dockerd: the site's login, a user's own login, and a cached private image refused to
// another user until the registry confirms them.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { CredentialStore } from '../../services/agent/images/credential-store';
import { FileImageAccess } from '../../services/agent/images/image-access';
import { ImageService } from '../../services/agent/images/image-service';
import { silentLogger } from '../../services/agent/logger';
import { BerthError } from '../../services/shared/errors';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { node, REPO, sandbox, writeDockerLogin } from '../support/stack';

const PULL = { timeoutMs: 60_000, inactivityMs: 30_000 };

describe('registry credentials (real dockerd, htpasswd registry)', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-creds-it-'));
  const engine = () => new DockerodeEngine(node('n1').dockerSocket);
  const image = () => sandbox().privateRegistry.image;
  const removeLocal = async () => {
    const e = engine();
    for (const img of await e.listImages()) {
      if (img.repoDigests.some((d) => d.startsWith(`${sandbox().privateRegistry.address}/`))) await e.removeImage(img.id);
    }
  };
  // two users with home directories: one logged in, one not
  const homes = { alice: path.join(dir, 'alice'), bob: path.join(dir, 'bob') };
  const alice = { uid: 2101, home: homes.alice };
  const bob = { uid: 2102, home: homes.bob };

  before(async () => {
    writeDockerLogin(path.join(homes.alice, '.docker', 'config.json'), 'alice', alice.uid);
    await removeLocal();
  });
  after(removeLocal);

  const service = (store: CredentialStore, state = path.join(dir, 'state')) => {
    execFileSync('mkdir', ['-p', state]);
    return new ImageService(engine(), new RegistryClient(), PULL, silentLogger(), {}, new FileImageAccess(state), store);
  };

  it('refuses a pull without credentials, saying to log in', async () => {
    await assert.rejects(service(new CredentialStore()).ensure(image(), { user: bob }), (e: unknown) =>
      e instanceof BerthError && e.code === 'IMAGE_ACCESS_DENIED' && /needs credentials \(HTTP 401\); log in with docker login 127\.0\.0\.1:5002/.test(e.message));
  });

  it('pulls with the user\'s own login; another user is refused the cached copy, then let in with a login of their own', async () => {
    const images = service(new CredentialStore(), path.join(dir, 'state-user'));
    const a = await images.ensure(image(), { user: alice });
    assert.equal(a.pulled, true);
    assert.ok(await engine().imagePresent(a.digestRef));
    await assert.rejects(images.ensure(a.digestRef, { user: bob }), (e: unknown) =>
      e instanceof BerthError && e.code === 'IMAGE_ACCESS_DENIED' && /another user pulled it with their own registry credentials/.test(e.message));
    writeDockerLogin(path.join(homes.bob, '.docker', 'config.json'), 'bob', bob.uid, 'wrong-password');
    await assert.rejects(images.ensure(a.digestRef, { user: bob }), /refused the credentials from .*bob\/\.docker\/config\.json/);
    writeDockerLogin(path.join(homes.bob, '.docker', 'config.json'), 'bob', bob.uid);
    const b = await images.ensure(a.digestRef, { user: bob }); // the changed file is read again
    assert.equal(b.pulled, false, 'the cached copy is used once the registry confirmed bob');
  });

  it('pulls with the site\'s login for users without one, and the image is not private', async () => {
    await removeLocal();
    const siteFile = path.join(dir, 'site', 'config.json');
    writeDockerLogin(siteFile, 'site', 0);
    const images = service(new CredentialStore(siteFile), path.join(dir, 'state-site'));
    const r = await images.ensure(image(), { user: { uid: 2103, home: path.join(dir, 'carol') } });
    assert.equal(r.pulled, true);
    const again = await images.ensure(r.digestRef, { user: { uid: 2104, home: path.join(dir, 'dave') } });
    assert.equal(again.pulled, false);
  });

  it('berthd refuses to start with a site credentials file others can read', () => {
    const siteFile = path.join(dir, 'loose', 'config.json');
    writeDockerLogin(siteFile, 'site', 0);
    chmodSync(siteFile, 0o644);
    const cfg = path.join(dir, 'berthd-loose.json');
    writeFileSync(cfg, JSON.stringify({ node: 'itest-creds', stateDir: path.join(dir, 'berthd-state'), runDir: path.join(dir, 'run'), registryCredentialsFile: siteFile, dockerHost: `unix://${node('n1').dockerSocket}` }));
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist/berthd.js'), '--config', cfg], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`berthd: bad configuration:\\n.*${siteFile} can be read or written by other users \\(mode 0644\\); berth will not use them: run: chmod 600`));
  });
});
