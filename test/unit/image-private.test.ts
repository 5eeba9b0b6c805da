import assert from 'node:assert/strict';
import { chownSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BerthError } from '../../services/shared/errors';
import { CredentialStore } from '../../services/agent/images/credential-store';
import { MemoryImageAccess } from '../../services/agent/images/image-access';
import { ImageService } from '../../services/agent/images/image-service';
import { FakeEngine } from './fakes/fake-engine';
import { silentLogger } from '../../services/agent/logger';

const IMAGE = '127.0.0.1:5000/team/secret:1';
const DIGEST = 'sha256:' + 'c'.repeat(64);
const PINNED = `127.0.0.1:5000/team/secret@${DIGEST}`;

/** a home directory for uid, with a docker login for 127.0.0.1:5000 when `login` is given */
function home(uid: number, login?: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-home-'));
  if (login) {
    mkdirSync(path.join(dir, '.docker'));
    const file = path.join(dir, '.docker', 'config.json');
    writeFileSync(file, JSON.stringify({ auths: { '127.0.0.1:5000': { auth: Buffer.from(`${login}:pw`).toString('base64') } } }), { mode: 0o600 });
    chownSync(file, uid, uid);
  }
  return dir;
}

function setup(siteFile?: string) {
  const engine = new FakeEngine();
  engine.digests.set(IMAGE, DIGEST);
  const access = new MemoryImageAccess();
  const images = new ImageService(engine, engine, { timeoutMs: 1000, inactivityMs: 1000 }, silentLogger(), {}, access, new CredentialStore(siteFile));
  return { engine, access, images };
}

const alice = { uid: 2001, home: home(2001, 'alice') };
const bob = { uid: 2002, home: home(2002) };

describe('images pulled with a user\'s own credentials', () => {
  it('pulls with the user\'s login and marks the image private to that user', async () => {
    const { engine, access, images } = setup();
    const r = await images.ensure(IMAGE, { user: alice });
    assert.equal(r.pulled, true);
    assert.deepEqual(engine.pullAuths, [`alice from ${alice.home}/.docker/config.json`]);
    assert.deepEqual([...access.allowed(PINNED)!], [2001]);
  });

  it('refuses the cached copy to another user the registry does not confirm, naming why', async () => {
    const { engine, images } = setup();
    await images.ensure(IMAGE, { user: alice });
    engine.deniedDigests.add(DIGEST);
    await assert.rejects(images.ensure(PINNED, { user: bob }), (e: unknown) =>
      e instanceof BerthError && e.code === 'IMAGE_ACCESS_DENIED'
      && /is on this node only because another user pulled it with their own registry credentials/.test(e.message)
      && /docker login 127\.0\.0\.1:5000/.test(e.message));
    assert.deepEqual(engine.accessChecks, [`${PINNED}@${DIGEST} anonymous`]);
    assert.equal(engine.calls.filter((c) => c.startsWith('pull')).length, 1, 'no second pull');
  });

  it('lets another user start it once the registry confirms them, and remembers that', async () => {
    const { engine, access, images } = setup();
    await images.ensure(IMAGE, { user: alice });
    const r = await images.ensure(PINNED, { user: bob });
    assert.equal(r.pulled, false);
    await images.ensure(PINNED, { user: bob });
    assert.equal(engine.accessChecks.length, 1, 'checked once');
    assert.deepEqual([...access.allowed(PINNED)!].sort(), [2001, 2002]);
  });

  it('does not let callers with different credentials share one pull', async () => {
    const { engine, images } = setup();
    engine.pullDelayMs = 50;
    engine.deniedDigests.add(DIGEST); // anonymous pulls are refused
    const [a, b] = await Promise.allSettled([images.ensure(IMAGE, { user: alice }), images.ensure(PINNED, { user: bob })]);
    assert.equal(a.status, 'fulfilled', 'alice is not failed by bob\'s anonymous pull');
    assert.equal(b.status, 'rejected');
    assert.match(String((b as PromiseRejectedResult).reason), /authentication required/);
    assert.deepEqual(engine.pullAuths.sort(), ['alice from ' + alice.home + '/.docker/config.json', 'anonymous']);
  });

  it('does not gate images pulled anonymously or with the site\'s credentials', async () => {
    const siteDir = mkdtempSync(path.join(os.tmpdir(), 'berth-site-'));
    const siteFile = path.join(siteDir, 'config.json');
    writeFileSync(siteFile, JSON.stringify({ auths: { '127.0.0.1:5000': { auth: Buffer.from('site:spw').toString('base64') } } }), { mode: 0o600 });
    chownSync(siteFile, process.getuid!(), process.getgid!());
    const { engine, access, images } = setup(siteFile);
    await images.ensure(IMAGE, { user: bob }); // bob has no login: the site's is used
    assert.deepEqual(engine.pullAuths, [`site from ${siteFile}`]);
    assert.equal(access.allowed(PINNED), undefined);
    engine.deniedDigests.add(DIGEST);
    await images.ensure(PINNED, { user: { uid: 2003, home: home(2003) } });
    assert.deepEqual(engine.accessChecks, []);
  });

  it('refuses a job whose user keeps a login for the registry in a file others can read', async () => {
    const { images } = setup();
    const careless = { uid: 2004, home: home(2004, 'carol') };
    const { chmodSync } = await import('node:fs');
    chmodSync(path.join(careless.home, '.docker', 'config.json'), 0o644);
    await assert.rejects(images.ensure(IMAGE, { user: careless }), (e: unknown) =>
      e instanceof BerthError && e.code === 'CREDENTIALS_UNSAFE' && /mode 0644.*chmod 600/.test(e.message));
  });
});
