// The image GC against sandbox node n1's real dockerd: least recently used first, never an
// image a container uses. The disk figures are given (the test cannot fill the disk), and the
// GC sees only this test's images so that it cannot touch what other tests use.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { collectImages, type ImageGcEngine } from '../../services/agent/housekeeping/image-gc';
import { FileImageUseLog } from '../../services/agent/images/image-use-log';
import { silentLogger } from '../../services/agent/logger';
import { node } from '../support/stack';

const REPO = 'berth-gc-test/img';

describe('image GC on a real engine', { timeout: 60_000 }, () => {
  const sock = node('n1').dockerSocket;
  const engine = new DockerodeEngine(sock);
  const docker = (...args: string[]): string => execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8' }).trim();
  const made: string[] = [];

  after(() => {
    try {
      docker('rm', '-f', 'berth-gc-test-user');
    } catch {
      // already gone
    }
    for (const tag of made) {
      try {
        docker('rmi', '-f', tag);
      } catch {
        // removed by the GC
      }
    }
  });

  function image(name: string): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-gc-'));
    mkdirSync(path.join(dir, 'etc'));
    writeFileSync(path.join(dir, 'etc', 'marker'), `${name} ${Date.now()} ${Math.random()}\n`);
    const tag = `${REPO}:${name}`;
    execFileSync('sh', ['-c', `tar -C ${dir} -c . | docker -H unix://${sock} import - ${tag} >/dev/null`]);
    made.push(tag);
    return docker('image', 'inspect', '--format', '{{.Id}}', tag);
  }

  it('removes the least recently used images first and never one a container uses', async () => {
    const oldest = image('oldest');
    const newer = image('newer');
    const used = image('used');
    const newest = image('newest');
    docker('create', '--name', 'berth-gc-test-user', '--network', 'none', `${REPO}:used`, '/nothing');
    const uses = new FileImageUseLog(mkdtempSync(path.join(os.tmpdir(), 'berth-gc-state-')));
    const now = Date.now();
    uses.used(used, now - 10 * 3_600_000);
    uses.used(oldest, now - 5 * 3_600_000);
    uses.used(newer, now - 3 * 3_600_000);
    uses.used(newest, now - 1 * 3_600_000);
    const ours = new Set([oldest, newer, used, newest]);
    const view: ImageGcEngine = {
      listImages: async () => (await engine.listImages()).filter((i) => ours.has(i.id)),
      imagesInUse: () => engine.imagesInUse(),
      removeImage: (id) => engine.removeImage(id),
    };
    const size = (await view.listImages())[0]!.sizeBytes || 1;
    // 86 % full; getting to 70 % needs 1.6 images' worth: the two least recently used unused ones
    const r = await collectImages({
      engine: view, disk: async () => ({ totalBytes: 10 * size, usedBytes: 8.6 * size }), uses,
      policy: { highPercent: 85, lowPercent: 70, minAgeMs: 0, dryRun: false }, log: silentLogger(),
    });
    assert.deepEqual(r.removed.map((x) => x.id), [oldest, newer]);
    const left = new Set((await engine.listImages()).map((i) => i.id));
    assert.ok(!left.has(oldest) && !left.has(newer), 'the two least recently used are gone from the engine');
    assert.ok(left.has(used), 'the image a container uses stays, though it is the least recently used');
    assert.ok(left.has(newest));
    assert.equal(uses.lastUsed(oldest), undefined);
  });
});
