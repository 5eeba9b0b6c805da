// berth pull IMAGE --nodes n[1-3]: pre-staged on every node through its agent; three nodes
// pulling straight from the registry fetch each blob three times (once per node); a node
// whose agent cannot be reached is reported and does not hide the others.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { node, sandbox } from '../support/stack';
import { run, waitFor } from '../support/slurm';

describe('berth pull across nodes', { timeout: 120_000 }, () => {
  it('pre-stages the image on every node, one fetch per blob per node', async () => {
    const image = sandbox().demoImage;
    for (const n of ['n1', 'n2', 'n3']) {
      const d = ['-H', `unix://${node(n).dockerSocket}`];
      // jobs an earlier test cancelled may still be in their epilogs: their containers keep
      // the image (and its blobs) on the node
      waitFor(`no containers left on ${n}`, () => run('docker', [...d, 'ps', '-aq']).stdout.trim() === '' || undefined, 90_000);
      // every image of the sandbox registry: others (benchmark, tag-moved) share the demo's layer
      for (const id of run('docker', [...d, 'images', '-q', '--no-trunc', '--filter', 'reference=127.0.0.1:5000/berth/*']).stdout.split('\n').filter(Boolean)) {
        run('docker', [...d, 'rmi', '-f', id]);
      }
    }
    const log = sandbox().registry.log;
    const start = statSync(log).size;
    const r = run('berth', ['pull', image, '--nodes', 'n[1-3],n9']);
    assert.equal(r.code, 3, 'some nodes have it: exit 3\n' + r.stdout + r.stderr);
    for (const n of ['n1', 'n2', 'n3']) assert.match(r.stdout, new RegExp(`^${n}  pulled in [0-9.]+ s: 127\\.0\\.0\\.1:5000/berth/demo@sha256:[a-f0-9]{64}$`, 'm'));
    assert.match(r.stdout, /^n9  error: berthd on n9 is not reachable/m);
    assert.match(r.stdout, /berth pull: 1 of 4 node\(s\) do not have/);
    await new Promise((res) => setTimeout(res, 300));
    const gets = [...readFileSync(log).subarray(start).toString().matchAll(/"GET \/v2\/berth\/demo\/blobs\/(sha256:[a-f0-9]{64}) HTTP/g)].map((m) => m[1]!);
    const perBlob = new Map<string, number>();
    for (const g of gets) perBlob.set(g, (perBlob.get(g) ?? 0) + 1);
    assert.ok(perBlob.size > 0);
    for (const [blob, count] of perBlob) assert.equal(count, 3, `${blob} fetched ${count} times`);
    const again = run('berth', ['pull', image, '--nodes', 'n[1-3]']);
    assert.equal(again.code, 0, again.stdout);
    assert.equal((again.stdout.match(/already present/g) ?? []).length, 3);
  });
});
