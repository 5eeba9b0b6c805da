import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RegistryClient, RegistryError } from '../../services/shared/images/registry-client';

const DIGEST = 'sha256:' + 'e'.repeat(64);
const BODY = '{"schemaVersion":2}';
const INDEX = 'sha256:' + 'a'.repeat(64);
const OTHER = 'sha256:' + 'b'.repeat(64);
/** this machine's OCI architecture, as the client picks from an index */
const ARCH = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;

describe('registry client (a local HTTP registry double on loopback)', () => {
  let server: http.Server;
  let host = '';
  const seen: string[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      if (req.url === '/token?service=reg&scope=repository%3Aprivate%2Fx%3Apull') return res.end(JSON.stringify({ token: 'T0K' }));
      if (req.url === '/v2/team/app/manifests/1.0') return res.writeHead(200, { 'Docker-Content-Digest': DIGEST }).end();
      if (req.url === '/v2/team/nodigest/manifests/latest') return res.writeHead(200).end(req.method === 'GET' ? BODY : undefined);
      if (req.url === '/v2/private/x/manifests/2') {
        if (req.headers.authorization === 'Bearer T0K') return res.writeHead(200, { 'Docker-Content-Digest': DIGEST }).end();
        return res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${host}/token",service="reg",scope="repository:private/x:pull"` }).end();
      }
      if (req.url === '/v2/team/broken/manifests/1') return res.writeHead(500).end();
      if (req.url === `/v2/team/multi/manifests/${INDEX}`) return res.writeHead(200).end(JSON.stringify({ manifests: [
        { digest: OTHER, platform: { os: 'linux', architecture: 'riscv64' } },
        { digest: DIGEST, platform: { os: 'linux', architecture: ARCH } },
      ] }));
      if (req.url === `/v2/team/multi/manifests/${DIGEST}`) return res.writeHead(200).end(JSON.stringify({ config: { size: 1000 }, layers: [{ size: 30e6 }, { size: 2e6 }] }));
      res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('reads the digest from a HEAD of the manifest, asking for every manifest type', async () => {
    assert.equal(await new RegistryClient().resolveDigest(`${host}/team/app:1.0`), DIGEST);
    assert.match(seen.at(-1)!, /^HEAD \/v2\/team\/app\/manifests\/1\.0/);
  });

  it('hashes the manifest when the registry sends no digest header', async () => {
    const expected = 'sha256:' + createHash('sha256').update(BODY).digest('hex');
    assert.equal(await new RegistryClient().resolveDigest(`${host}/team/nodigest`), expected);
  });

  it('gets an anonymous bearer token when challenged', async () => {
    assert.equal(await new RegistryClient().resolveDigest(`${host}/private/x:2`), DIGEST);
    assert.ok(seen.some((s) => s.endsWith('Bearer T0K')));
  });

  it('says manifest unknown for a missing tag, and names the status of a failing registry', async () => {
    await assert.rejects(new RegistryClient().resolveDigest(`${host}/team/app:9`), /manifest unknown, HTTP 404/);
    await assert.rejects(new RegistryClient().resolveDigest(`${host}/team/broken:1`), /HTTP 500/);
  });

  it("sizes an image before its pull: this platform's manifest from an index, its config and layers added up", async () => {
    assert.equal(await new RegistryClient().imageBytes(`${host}/team/multi@${INDEX}`), 1000 + 30e6 + 2e6);
    assert.deepEqual(seen.slice(-2).map((l) => l.split(' ').slice(0, 2).join(' ')), [`GET /v2/team/multi/manifests/${INDEX}`, `GET /v2/team/multi/manifests/${DIGEST}`]);
    await assert.rejects(new RegistryClient().imageBytes(`${host}/team/gone@${DIGEST}`), /manifest unknown/);
  });

  it('says connection refused when nothing listens', async () => {
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await assert.rejects(new RegistryClient(2000).resolveDigest(`127.0.0.1:${port}/x:1`), new RegExp(`127\\.0\\.0\\.1:${port}/v2/x/manifests/1: connection refused`));
  });
});

describe('registry client with credentials (an htpasswd-style and a token registry double)', () => {
  let server: http.Server;
  let host = '';
  const good = 'Basic ' + Buffer.from('alice:pw').toString('base64');
  const auth = (password: string) => ({ username: 'alice', password, registry: host, source: '/home/alice/.docker/config.json' });

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url?.startsWith('/v2/basic/')) {
        if (req.headers.authorization !== good) return res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' }).end();
        if (req.url === `/v2/basic/app/manifests/${DIGEST}` || req.url === '/v2/basic/app/manifests/1') return res.writeHead(200, { 'Docker-Content-Digest': DIGEST }).end();
        return res.writeHead(404).end();
      }
      if (req.url?.startsWith('/token')) {
        return req.headers.authorization === good ? res.end(JSON.stringify({ access_token: 'USER' })) : res.writeHead(401).end();
      }
      if (req.url === '/v2/bearer/app/manifests/1') {
        if (req.headers.authorization === 'Bearer USER') return res.writeHead(200, { 'Docker-Content-Digest': DIGEST }).end();
        return res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${host}/token",service="reg"` }).end();
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('answers a Basic challenge with the credentials given', async () => {
    assert.equal(await new RegistryClient().resolveDigest(`${host}/basic/app:1`, auth('pw')), DIGEST);
  });

  it('says the registry needs credentials when none are given, and flags it anonymous', async () => {
    await assert.rejects(new RegistryClient().resolveDigest(`${host}/basic/app:1`), (e: unknown) =>
      e instanceof RegistryError && e.authRefused && e.anonymous && /needs credentials \(HTTP 401\)/.test(e.message));
  });

  it('names the file whose credentials the registry refused', async () => {
    await assert.rejects(new RegistryClient().resolveDigest(`${host}/basic/app:1`, auth('wrong')), (e: unknown) =>
      e instanceof RegistryError && e.authRefused && !e.anonymous && /refused the credentials from \/home\/alice\/\.docker\/config\.json \(HTTP 401\)/.test(e.message));
  });

  it('gets a bearer token with Basic credentials from the token service', async () => {
    assert.equal(await new RegistryClient().resolveDigest(`${host}/bearer/app:1`, auth('pw')), DIGEST);
    await assert.rejects(new RegistryClient().resolveDigest(`${host}/bearer/app:1`, auth('wrong')), /token service of registry .* refused the credentials/);
  });

  it('checks access to a digest: allowed with good credentials, refused without', async () => {
    await new RegistryClient().checkAccess(`${host}/basic/app`, DIGEST, auth('pw'));
    await assert.rejects(new RegistryClient().checkAccess(`${host}/basic/app`, DIGEST), /needs credentials/);
    await assert.rejects(new RegistryClient().checkAccess(`${host}/basic/other`, DIGEST, auth('pw')), /manifest unknown/);
  });
});
