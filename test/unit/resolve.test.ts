import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runResolve } from '../../services/shared/images/resolve';

async function resolve(ref: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runResolve(ref, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe('berth resolve', () => {
  it('refuses a pinned digest at submit when its registry cannot be reached, saying why', async () => {
    const d = 'sha256:' + 'f'.repeat(64);
    const r = await resolve(`127.0.0.1:5999/team/app:1.0@${d}`);
    assert.equal(r.code, 1);
    assert.equal(r.out, '', 'nothing pinned: the job is not submitted');
    assert.match(r.err, /^berth: registry 127\.0\.0\.1:5999 could not be reached for image '127\.0\.0\.1:5999\/team\/app:1\.0@sha256:f{64}' \(.*connection refused\).*; the job was not submitted: berth checks at submission that the registry has the pinned digest/);
  });

  it('refuses a malformed reference with the reason and exit 1', async () => {
    const r = await resolve('Team/App');
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /^berth: image reference 'Team\/App' is malformed: path component 'Team' must be lowercase/);
  });
});

describe('berth resolve against a registry that needs credentials', () => {
  const DIGEST = 'sha256:' + '9'.repeat(64);
  let server: import('node:http').Server;
  let host = '';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-resolve-'));
  const config = (doc: unknown, mode = 0o600) => {
    const f = path.join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(doc), { mode });
    return f;
  };
  const run = async (ref: string, opts: Parameters<typeof runResolve>[3]) => {
    let out = '';
    let err = '';
    const code = await runResolve(ref, (s) => (out += s), (s) => (err += s), opts);
    return { code, out, err };
  };

  before(async () => {
    const http = await import('node:http');
    server = http.createServer((req, res) => {
      if (req.headers.authorization !== 'Basic ' + Buffer.from('alice:pw').toString('base64')) return res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' }).end();
      res.writeHead(200, { 'Docker-Content-Digest': DIGEST }).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
  });
  after(() => server.close());

  it('pins with the user\'s own login', async () => {
    const f = config({ auths: { [host]: { auth: Buffer.from('alice:pw').toString('base64') } } });
    assert.deepEqual(await run(`${host}/p/app:1`, { dockerConfig: f, uid: process.getuid!() }), { code: 0, out: `${host}/p/app@${DIGEST}\n`, err: '' });
  });

  it('fails without a login, saying how to log in', async () => {
    const r = await run(`${host}/p/app:1`, { dockerConfig: path.join(dir, 'none.json'), uid: process.getuid!() });
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`^berth: image '${host}/p/app:1': registry ${host} needs credentials \\(HTTP 401\\); log in with docker login ${host}`));
  });

  it('refuses a login others can read', async () => {
    const f = config({ auths: { [host]: { auth: Buffer.from('alice:pw').toString('base64') } } }, 0o644);
    const r = await run(`${host}/p/app:1`, { dockerConfig: f, uid: process.getuid!() });
    assert.equal(r.code, 1);
    assert.match(r.err, /can be read or written by other users \(mode 0644\); berth will not use them: run: chmod 600/);
  });

  it('passes a site-credentialed registry\'s image on unpinned, for the node agents to resolve', async () => {
    const r = await run(`${host}/p/app:1`, { dockerConfig: path.join(dir, 'none.json'), uid: process.getuid!(), siteRegistries: [host] });
    assert.deepEqual(r, { code: 0, out: `${host}/p/app:1\n`, err: '' });
  });

  it('still fails when the user\'s own login is refused, even for a site registry', async () => {
    const f = config({ auths: { [host]: { auth: Buffer.from('alice:nope').toString('base64') } } });
    const r = await run(`${host}/p/app:1`, { dockerConfig: f, uid: process.getuid!(), siteRegistries: [host] });
    assert.equal(r.code, 1);
    assert.match(r.err, /refused the credentials from .*config-.*\.json \(HTTP 401\); log in again with docker login/);
  });

  it('checks an already pinned image too: a private digest without a login fails at submit', async () => {
    const r = await run(`${host}/p/app@${DIGEST}`, { dockerConfig: path.join(dir, 'none.json'), uid: process.getuid!() });
    assert.equal(r.code, 1);
    assert.match(r.err, /needs credentials/);
    const f = config({ auths: { [host]: { auth: Buffer.from('alice:pw').toString('base64') } } });
    assert.deepEqual(await run(`${host}/p/app@${DIGEST}`, { dockerConfig: f, uid: process.getuid!() }), { code: 0, out: `${host}/p/app@${DIGEST}\n`, err: '' });
  });
});
