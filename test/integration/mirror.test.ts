// Pull-through mirrors on the real sandbox: three nodes pulling one uncached image through
// the proxy-mode registry make the origin serve each blob once; a dead mirror falls back to
// the origin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { ImageService } from '../../services/agent/images/image-service';
import { silentLogger } from '../../services/agent/logger';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { blobGets, pushAsSite } from '../support/images';
import { node, sandbox } from '../support/stack';

const NODES = ['n1', 'n2', 'n3'];

describe('pull-through mirrors', { timeout: 90_000 }, () => {
  const tag = `127.0.0.1:5000/berth/mirror-test:${Date.now()}`;
  const docker = (n: string, ...args: string[]): string => execFileSync('docker', ['-H', `unix://${node(n).dockerSocket}`, ...args], { encoding: 'utf8' }).trim();
  const clean = (): void => {
    for (const n of NODES) {
      for (const id of docker(n, 'images', '-q', '--no-trunc', '--filter', 'reference=*/berth/mirror-test').split('\n').filter(Boolean)) {
        try {
          docker(n, 'rmi', '-f', id);
        } catch {
          // already gone
        }
      }
    }
  };
  after(clean);

  it('serves three nodes with one origin fetch per blob, and falls back to the origin when the mirror is down', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-mirror-'));
    writeFileSync(path.join(dir, 'data.bin'), Buffer.from(Array.from({ length: 512 * 1024 }, () => Math.floor(Math.random() * 256))));
    execFileSync('sh', ['-c', `tar -C ${dir} -c . | docker -H unix://${node('n1').dockerSocket} import - ${tag} >/dev/null`]);
    pushAsSite(node('n1').dockerSocket, tag);
    clean();
    const origin = sandbox().registry.log;
    const mirrorLog = sandbox().mirror.log;
    const [o0, m0] = [statSync(origin).size, statSync(mirrorLog).size];
    const mirrors = { '127.0.0.1:5000': [sandbox().mirror.address] };
    const via = (n: string) => new ImageService(new DockerodeEngine(node(n).dockerSocket), new RegistryClient(), { timeoutMs: 60_000, inactivityMs: 30_000 }, silentLogger(), mirrors).ensure(tag);
    // the first node fills the mirror (the proxy registry stores what it relayed just after
    // serving it: a miss racing that write goes upstream again); the others then pull at once
    const first = await via('n1');
    await new Promise((r) => setTimeout(r, 1500));
    const afterFirst = statSync(origin).size;
    const results = [first, ...(await Promise.all(['n2', 'n3'].map(via)))];
    for (const r of results) assert.match(r.localRef, /^127\.0\.0\.1:5001\/berth\/mirror-test@sha256:[a-f0-9]{64}$/);
    await new Promise((r) => setTimeout(r, 500));
    const fromOrigin = blobGets(origin, o0, 'berth/mirror-test');
    const fromMirror = blobGets(mirrorLog, m0, 'berth/mirror-test');
    assert.ok(fromMirror.size > 0, 'the nodes fetched blobs from the mirror');
    for (const [blob, [count]] of fromMirror) assert.equal(count, 3, `mirror served ${blob} ${count} times`);
    assert.deepEqual([...fromOrigin.keys()].sort(), [...fromMirror.keys()].sort());
    // the distribution registry in proxy mode asks its upstream twice per blob it has not got
    // (it relays one copy and stores another): that is a constant, not a count of nodes
    for (const [blob, [count]] of fromOrigin) assert.ok(count <= 2, `origin served ${blob} ${count} times`);
    assert.equal(blobGets(origin, afterFirst, 'berth/mirror-test').size, 0, 'nodes after the first cost the origin nothing');
    const originBytes = [...fromOrigin.values()].reduce((a, [, b]) => a + b, 0);
    const mirrorBytes = [...fromMirror.values()].reduce((a, [, b]) => a + b, 0);
    assert.ok(originBytes < mirrorBytes, `origin egress ${originBytes} B for ${mirrorBytes} B delivered to three nodes`);

    clean();
    const dead = await new ImageService(new DockerodeEngine(node('n1').dockerSocket), new RegistryClient(), { timeoutMs: 60_000, inactivityMs: 30_000 }, silentLogger(),
      { '127.0.0.1:5000': ['127.0.0.1:5999'] }).ensure(tag);
    assert.equal(dead.localRef, dead.digestRef, 'a dead mirror falls back to the registry itself');
  });
});
