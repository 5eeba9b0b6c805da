// Who may change the site registry, on the sandbox's copy of what docker-compose.yml ships
// (nginx with scripts/examples/registry-nginx.conf in front of docker-registry): the pull
// address 127.0.0.1:5000 serves anyone and takes no writes; the push address 127.0.0.1:5003
// takes pushes with the site login only. Through n1's and n2's real dockerd, and raw HTTP.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pushAsSite } from '../support/images';
import { node, privateLogin, registryPushLogin, sandbox } from '../support/stack';

const MANIFEST_TYPES = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
const REPO_NAME = 'berth/push-auth-test';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('site registry: anonymous pulls, pushes only with the site login', { timeout: 120_000 }, () => {
  const tag = String(Date.now());
  const pull = () => sandbox().registry.address;
  const push = () => sandbox().registry.pushAddress;
  const pullRef = () => `${pull()}/${REPO_NAME}:${tag}`;
  const pushRef = () => `${push()}/${REPO_NAME}:${tag}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-push-auth-'));
  const pushed = new Set<string>();
  let original = '';

  /** docker CLI on a node with its own config dir (no logins unless written there) */
  const docker = (n: string, config: string, args: string[], input?: string) =>
    spawnSync('docker', ['--config', config, '-H', `unix://${node(n).dockerSocket}`, ...args], { encoding: 'utf8', input });
  const configDir = (name: string): string => {
    const d = path.join(dir, name);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    return d;
  };
  /** a one-layer image on n1 holding /which = text, tagged with every ref given */
  const makeImage = (text: string, ...refs: string[]): void => {
    const root = mkdtempSync(path.join(dir, 'rootfs-'));
    writeFileSync(path.join(root, 'which'), `${text}\n`);
    const sock = node('n1').dockerSocket;
    execFileSync('sh', ['-c', `tar -C ${root} -c . | docker -H unix://${sock} import - ${refs[0]} >/dev/null`]);
    for (const r of refs.slice(1)) execFileSync('docker', ['-H', `unix://${sock}`, 'tag', refs[0]!, r]);
  };
  const request = (base: string, method: string, p: string, auth?: string, body?: string) =>
    fetch(`http://${base}/v2/${p}`, { method, body, headers: { Accept: MANIFEST_TYPES, ...(auth ? { Authorization: auth } : {}) } });
  /** the tag's manifest digest as anyone sees it on the pull address */
  const digestNow = async (): Promise<string> => {
    const r = await request(pull(), 'HEAD', `${REPO_NAME}/manifests/${tag}`);
    assert.equal(r.status, 200, `HEAD of ${pullRef()} answered ${r.status}`);
    return r.headers.get('docker-content-digest') ?? '(no Docker-Content-Digest)';
  };

  before(async () => {
    makeImage('original', pullRef());
    pushAsSite(node('n1').dockerSocket, pullRef());
    original = await digestNow();
    assert.match(original, /^sha256:[a-f0-9]{64}$/);
    pushed.add(original);
  });

  after(async () => {
    for (const digest of pushed) await request(push(), 'DELETE', `${REPO_NAME}/manifests/${digest}`, basic('site', registryPushLogin()));
    for (const n of ['n1', 'n2']) {
      const ids = docker(n, configDir('cleanup'), ['images', '-q', '--no-trunc', '--filter', `reference=*/${REPO_NAME}`]).stdout.split('\n').filter(Boolean);
      for (const id of new Set(ids)) docker(n, configDir('cleanup'), ['rmi', '-f', id]);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an anonymous docker push on both addresses, and the tag stays as it was', async () => {
    makeImage('intruder', pullRef(), pushRef());
    const anonymous = configDir('anonymous');
    const onPull = docker('n1', anonymous, ['push', pullRef()]);
    assert.notEqual(onPull.status, 0, `anonymous push to ${pull()} succeeded:\n${onPull.stdout}`);
    assert.match(onPull.stderr, /unauthorized: 127\.0\.0\.1:5000 only serves pulls; images are pushed to 127\.0\.0\.1:5003 by the site admins, with a push login/);
    const onPush = docker('n1', anonymous, ['push', pushRef()]);
    assert.notEqual(onPush.status, 0, `anonymous push to ${push()} succeeded:\n${onPush.stdout}`);
    assert.match(onPush.stderr, /no basic auth credentials/);
    assert.equal(await digestNow(), original);
  });

  it('answers raw writes without a login with 401 and a Basic challenge, and the pull address even with one', async () => {
    const manifest = await (await request(pull(), 'GET', `${REPO_NAME}/manifests/${original}`)).text();
    const writes: [string, string, string?][] = [
      ['POST', `${REPO_NAME}/blobs/uploads/`],
      ['PUT', `${REPO_NAME}/manifests/${tag}`, manifest],
      ['DELETE', `${REPO_NAME}/manifests/${original}`],
    ];
    for (const base of [pull(), push()]) {
      for (const [method, p, body] of writes) {
        const r = await request(base, method, p, undefined, body);
        assert.equal(r.status, 401, `anonymous ${method} ${base}/v2/${p}`);
        assert.match(r.headers.get('www-authenticate') ?? '', /^Basic realm="/, `${method} ${base}: challenge`);
        assert.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
      }
    }
    for (const [method, p, body] of writes) {
      const r = await request(pull(), method, p, basic('site', registryPushLogin()), body);
      assert.equal(r.status, 401, `${method} on the pull address with the site login`);
      assert.match(await r.text(), /"code":"UNAUTHORIZED","message":"127\.0\.0\.1:5000 only serves pulls/);
    }
    // the push address wants a login for reads too: that 401 on GET /v2/ is what makes docker send one
    assert.equal((await request(push(), 'GET', '')).status, 401);
    assert.equal(await digestNow(), original);
  });

  it('refuses a wrong password and users\' own logins: docker login fails, writes get 401', async () => {
    const login = docker('n1', configDir('wrong'), ['login', '-u', 'site', '--password-stdin', push()], 'not-the-password\n');
    assert.notEqual(login.status, 0, 'docker login with a wrong password succeeded');
    assert.match(login.stderr, /login attempt to http:\/\/127\.0\.0\.1:5003\/v2\/ failed with status: 401 Unauthorized/);
    for (const auth of [basic('site', 'not-the-password'), basic('alice', privateLogin('alice')), basic('bob', privateLogin('bob'))]) {
      assert.equal((await request(push(), 'POST', `${REPO_NAME}/blobs/uploads/`, auth)).status, 401);
    }
    const wrong = configDir('wrong-push');
    writeFileSync(path.join(wrong, 'config.json'), JSON.stringify({ auths: { [push()]: { auth: Buffer.from('site:not-the-password').toString('base64') } } }), { mode: 0o600 });
    const r = docker('n1', wrong, ['push', pushRef()]);
    assert.notEqual(r.status, 0, 'push with a wrong password succeeded');
    assert.match(r.stderr, /unauthorized/);
    assert.equal(await digestNow(), original);
  });

  it('takes a push with the site login on the push address; the pull address then serves the new image', async () => {
    const site = configDir('site');
    const login = docker('n1', site, ['login', '-u', 'site', '--password-stdin', push()], `${registryPushLogin()}\n`);
    assert.equal(login.status, 0, login.stderr);
    const r = docker('n1', site, ['push', pushRef()]);
    assert.equal(r.status, 0, r.stderr);
    const digest = /digest: (sha256:[a-f0-9]{64})/.exec(r.stdout)?.[1];
    assert.ok(digest, `no digest in:\n${r.stdout}`);
    pushed.add(digest);
    assert.notEqual(digest, original);
    assert.equal(await digestNow(), digest);
  });

  it('serves pulls anonymously: the manifest over plain HTTP, and docker pull on another node', async () => {
    const digest = await digestNow();
    const r = await request(pull(), 'GET', `${REPO_NAME}/manifests/${tag}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('docker-content-digest'), digest);
    const anonymous = configDir('anonymous-pull');
    const p = docker('n2', anonymous, ['pull', pullRef()]);
    assert.equal(p.status, 0, p.stderr);
    const repoDigests = JSON.parse(docker('n2', anonymous, ['image', 'inspect', '--format', '{{json .RepoDigests}}', pullRef()]).stdout) as string[];
    assert.ok(repoDigests.includes(`${pull()}/${REPO_NAME}@${digest}`), `n2 has ${repoDigests.join(', ')}`);
    // the image pushed from n1 (an image's id is its config's digest, the same on every engine)
    const id = (n: string, ref: string) => docker(n, anonymous, ['image', 'inspect', '--format', '{{.Id}}', ref]).stdout.trim();
    assert.equal(id('n2', pullRef()), id('n1', pushRef()));
  });

  it('keeps the push login in a root-only file that holds the site login alone', () => {
    const file = sandbox().registry.pushLogins;
    const st = statSync(file);
    assert.equal(st.uid, 0);
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object), ['site']);
  });
});
