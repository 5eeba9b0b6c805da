import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BerthError } from '../../services/shared/errors';
import { fileCredentials, firstOf, parseDockerConfig, readPrivateFile, registryKey } from '../../services/shared/images/credentials';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const uid = process.getuid!();

function configFile(doc: unknown, mode = 0o600): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-creds-'));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc), { mode });
  chmodSync(file, mode);
  return file;
}

describe('docker config credentials', () => {
  it('decodes auth (password may hold colons), username/password and identity tokens, keyed by host', () => {
    const c = parseDockerConfig(JSON.stringify({
      auths: {
        'https://reg.site:5443/v2/': { auth: b64('alice:pa:ss') },
        'other.site': { username: 'bob', password: 'pw' },
        'https://index.docker.io/v1/': { identitytoken: 'tok' },
        'empty.site': {},
      },
      credHelpers: { 'gcr.io': 'gcloud' },
      credsStore: 'desktop',
    }), 'f');
    assert.deepEqual(c.auths.get('reg.site:5443'), { username: 'alice', password: 'pa:ss' });
    assert.deepEqual(c.auths.get('other.site'), { username: 'bob', password: 'pw' });
    assert.deepEqual(c.auths.get('docker.io'), { identityToken: 'tok' });
    assert.equal(c.auths.has('empty.site'), false);
    assert.deepEqual(c.helpers.sort(), ['desktop', 'gcloud']);
  });

  it('names Docker Hub docker.io whichever way it is written', () => {
    for (const h of ['', 'docker.io', 'index.docker.io', 'https://index.docker.io/v1/', 'registry-1.docker.io']) assert.equal(registryKey(h), 'docker.io');
    assert.equal(registryKey('HTTP://Reg.Site:5000/'), 'reg.site:5000');
  });

  it('refuses a file that is not JSON without quoting it, and a bad auth field with what to do', () => {
    assert.throws(() => parseDockerConfig('{"auths": {"r": {"auth": "c2VjcmV0LXBhc3N3b3Jk"', 'F'), (e: unknown) =>
      e instanceof BerthError && /^F is not valid JSON; fix it or run docker login again$/.test(e.message));
    assert.throws(() => parseDockerConfig(JSON.stringify({ auths: { r: { auth: b64('nocolon') } } }), 'F'), /auths\["r"\]: "auth" is not base64 of USER:PASSWORD/);
  });

  it('reads a private file of its owner, and says undefined when there is none', async () => {
    const file = configFile({ auths: {} });
    assert.equal((await readPrivateFile(file, uid))?.unsafe, undefined);
    assert.equal(await readPrivateFile(path.join(path.dirname(file), 'missing.json'), uid), undefined);
  });

  it('marks a file others can read unsafe, with the chmod that fixes it', async () => {
    const file = configFile({ auths: {} }, 0o644);
    const got = await readPrivateFile(file, uid);
    assert.match(got!.unsafe!.message, new RegExp(`${file} can be read or written by other users \\(mode 0644\\); berth will not use them: run: chmod 600 ${file}`));
    chmodSync(file, 0o620);
    assert.match((await readPrivateFile(file, uid))!.unsafe!.message, /mode 0620/);
  });

  it('refuses a symlink (root must not be pointed at another file) and a file of another owner', async () => {
    const target = configFile({ auths: {} });
    const link = path.join(path.dirname(target), 'link.json');
    symlinkSync('/etc/shadow', link);
    await assert.rejects(readPrivateFile(link, uid), (e: unknown) => e instanceof BerthError && e.code === 'CREDENTIALS_UNSAFE' && /is a symbolic link/.test(e.message));
    chownSync(target, 4242, 4242);
    await assert.rejects(readPrivateFile(target, uid), new RegExp(`is owned by uid 4242, not by uid ${uid}`));
    const dir = path.join(path.dirname(target), 'dir.json');
    mkdirSync(dir);
    await assert.rejects(readPrivateFile(dir, uid), /is not a regular file/);
  });

  it('uses an unsafe file for no registry, but fails only for the registries it has logins for', async () => {
    const file = configFile({ auths: { 'reg.site:5443': { auth: b64('alice:pw') } } }, 0o644);
    const lookup = fileCredentials(file, uid);
    assert.equal(await lookup('public.site'), undefined);
    await assert.rejects(lookup('reg.site:5443'), /chmod 600/);
  });

  it('gives the entry with its source, and the first lookup that has one wins', async () => {
    const own = fileCredentials(configFile({ auths: { 'a.site': { auth: b64('alice:pw') } } }), uid);
    const siteFile = configFile({ auths: { 'a.site': { auth: b64('site:spw') }, 'b.site': { auth: b64('site:spw') } } });
    const both = firstOf(own, fileCredentials(siteFile, uid));
    assert.equal((await both('a.site'))?.username, 'alice');
    assert.deepEqual(await both('b.site'), { username: 'site', password: 'spw', registry: 'b.site', source: siteFile });
    assert.equal(await both('c.site'), undefined);
  });
});
