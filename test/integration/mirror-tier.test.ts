// The coalescing mirror tier (nginx proxy_cache, scripts/examples/mirror-tier-nginx.conf) on the
// real sandbox: three nodes starting one uncached image at once through it cost the origin one
// fetch per blob; a tag moved at the origin is never answered from the cache; a tier in front of
// a registry that needs a login never hands a blob to a client without one.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { ImageService } from '../../services/agent/images/image-service';
import { silentLogger } from '../../services/agent/logger';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { freePort } from '../../bench/support/own-berthd';
import { blobGets, forgetImage, pushRandomLayersImage } from '../support/images';
import { node, privateLogin, REPO, sandbox } from '../support/stack';

const NODES = ['n1', 'n2', 'n3'];
const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('coalescing mirror tier', { timeout: 60_000 }, () => {
  const stamp = Date.now();
  const repo = `berth/tier-test-${stamp}`;
  const tier = (): string => sandbox().mirrorTier.address;
  after(() => {
    for (const n of NODES) forgetImage(node(n).dockerSocket, `*/${repo}`);
  });

  it('three nodes pulling one uncached image at once through it cost the origin one fetch per blob', async () => {
    const tag = `${sandbox().registry.address}/${repo}:1`;
    const image = await pushRandomLayersImage(tag, 3, 5 << 20);
    const origin = sandbox().registry.log;
    const tierLog = sandbox().mirrorTier.log;
    const [o0, t0] = [statSync(origin).size, statSync(tierLog).size];
    const mirrors = { [sandbox().registry.address]: [tier()] };
    const results = await Promise.all(NODES.map((n) => new ImageService(new DockerodeEngine(node(n).dockerSocket), new RegistryClient(),
      { timeoutMs: 45_000, inactivityMs: 30_000 }, silentLogger(), mirrors).ensure(tag)));
    for (const r of results) {
      assert.equal(r.localRef, `${tier()}/${repo}@${image.manifestDigest}`, 'pulled through the tier');
      assert.ok(r.pulled);
    }
    await sleep(300);
    const fromOrigin = blobGets(origin, o0, repo);
    assert.deepEqual([...fromOrigin.keys()].sort(), [...image.blobs].sort(), 'the origin served every blob of the image');
    for (const [blob, [count]] of fromOrigin) assert.equal(count, 1, `origin served ${blob} ${count} times to three concurrent nodes`);
    const originText = readFileSync(origin).subarray(o0).toString();
    assert.equal([...originText.matchAll(new RegExp(`"GET /v2/${repo}/manifests/${image.manifestDigest} `, 'g'))].length, 1, 'the manifest by digest once');
    const fromTier = blobGets(tierLog, t0, repo);
    for (const blob of image.blobs) assert.equal(fromTier.get(blob)?.[0], 3, `the tier served ${blob} to each node`);
  });

  it('answers a tag from the origin every time: after the tag moved it names the new digest', async () => {
    const tag = `${sandbox().registry.address}/${repo}:moving`;
    const byTag = async (): Promise<string | null> => {
      const res = await fetch(`http://${tier()}/v2/${repo}/manifests/moving`, { headers: { accept: MANIFEST } });
      assert.equal(res.status, 200);
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(sha256(body), res.headers.get('docker-content-digest'), 'the body is the manifest the digest names');
      return res.headers.get('docker-content-digest');
    };
    const first = await pushRandomLayersImage(tag, 1, 64 << 10);
    assert.equal(await byTag(), first.manifestDigest);
    // cache the first manifest by digest as well: it must not stand in for the tag
    assert.equal((await fetch(`http://${tier()}/v2/${repo}/manifests/${first.manifestDigest}`, { headers: { accept: MANIFEST } })).status, 200);
    const second = await pushRandomLayersImage(tag, 1, 64 << 10);
    assert.notEqual(second.manifestDigest, first.manifestDigest);
    assert.equal(await byTag(), second.manifestDigest, 'the moved tag, never the cached old manifest');
    const old = await fetch(`http://${tier()}/v2/${repo}/manifests/${first.manifestDigest}`, { headers: { accept: MANIFEST } });
    assert.equal(sha256(Buffer.from(await old.arrayBuffer())), first.manifestDigest, 'a digest still names its own content');
  });

  it('in front of a registry that needs a login: serves its blobs only to a client with one, never from the cache', async (t) => {
    const priv = sandbox().privateRegistry;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-tier-private-'));
    chmodSync(dir, 0o755); // nginx's workers (www-data) reach their cache through it
    const cache = path.join(dir, 'cache');
    mkdirSync(cache, { mode: 0o700 });
    chownSync(cache, Number(readFileSync('/etc/passwd', 'utf8').match(/^www-data:[^:]*:(\d+):/m)?.[1]), 0);
    const port = await freePort();
    const conf = readFileSync(path.join(REPO, 'scripts/examples/mirror-tier-nginx.conf'), 'utf8')
      .replaceAll(sandbox().mirrorTier.upstream, priv.address)
      .replace(/listen 127\.0\.0\.1:\d+;/, `listen 127.0.0.1:${port};`)
      .replace('proxy_cache_path /var/cache/berth-mirror-tier ', `proxy_cache_path ${cache} `);
    assert.ok(conf.includes(`server ${priv.address};`) && conf.includes(`proxy_cache_path ${cache} `), 'the shipped config still names its upstream and cache path as expected');
    writeFileSync(path.join(dir, 'nginx.conf'), conf);
    const logFile = path.join(dir, 'access.log');
    // a file, not a pipe: nginx opens /dev/stdout, which a socket refuses
    const out = openSync(logFile, 'a');
    const nginx: ChildProcess = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-g', `user www-data; pid ${dir}/nginx.pid; daemon off;`], { stdio: ['ignore', out, out] });
    closeSync(out);
    t.after(() => {
      nginx.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    });
    const base = `http://127.0.0.1:${port}/v2/berth/private`;
    for (let i = 0; ; i++) {
      const up = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status, () => 0);
      if (up === 401) break; // the private registry's challenge, passed through
      assert.ok(i < 50, `the test's tier did not come up (log: ${readFileSync(logFile, 'utf8').slice(-500)})`);
      await sleep(100);
    }
    const login = { authorization: `Basic ${Buffer.from(`site:${privateLogin('site')}`).toString('base64')}` };
    const manifest = await fetch(`${base}/manifests/1.0`, { headers: { ...login, accept: MANIFEST } });
    assert.equal(manifest.status, 200);
    const layer = ((await manifest.json()) as { layers: { digest: string }[] }).layers[0]!.digest;
    const p0 = statSync(priv.log).size;

    const withLogin = await fetch(`${base}/blobs/${layer}`, { headers: login });
    assert.equal(withLogin.status, 200);
    assert.equal(sha256(Buffer.from(await withLogin.arrayBuffer())), layer);
    const anonymous = await fetch(`${base}/blobs/${layer}`);
    assert.equal(anonymous.status, 401, 'no login, no blob: the registry\'s refusal, not the copy the tier just relayed');
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /, 'with the registry\'s challenge');
    await anonymous.arrayBuffer();
    const wrongLogin = await fetch(`${base}/blobs/${layer}`, { headers: { authorization: `Basic ${Buffer.from('site:wrong').toString('base64')}` } });
    assert.equal(wrongLogin.status, 401, 'a wrong login gets nothing either');
    await wrongLogin.arrayBuffer();
    const again = await fetch(`${base}/blobs/${layer}`, { headers: login });
    assert.equal(again.status, 200);
    await again.arrayBuffer();
    await sleep(300);
    assert.equal(blobGets(priv.log, p0, 'berth/private').get(layer)?.[0], 2, 'each fetch with a login went to the registry (nothing private is cached)');
    const verdicts = [...readFileSync(logFile, 'utf8').matchAll(new RegExp(`"GET /v2/berth/private/blobs/${layer} [^"]*" (\\d+) \\d+ \\S+ cache=(\\S+)`, 'g'))].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(verdicts, ['200 BYPASS', '401 MISS', '401 BYPASS', '200 BYPASS']);
  });
});
