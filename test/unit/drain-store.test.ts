import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DrainStore } from '../../services/agent/admin/drain-store';
import { BerthError } from '../../services/shared/errors';

const clock = () => new Date('2026-03-01T10:00:00Z');

describe('drain store', () => {
  it('refuses new jobs while drained, with node, reason and the way out, and a new store (a restart) stays drained', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'drain-'));
    const store = new DrainStore(dir, clock);
    assert.doesNotThrow(() => store.assertAccepting('n7', '12'));
    assert.equal(store.drain('new disks', 'root'), true);
    assert.equal(store.drain('new disks, later', 'ops-admin'), false, 'draining again only replaces the reason');
    const after = new DrainStore(dir);
    assert.deepEqual(after.get(), { drained: true, reason: 'new disks, later', since: '2026-03-01T10:00:00.000Z', by: 'ops-admin' });
    assert.throws(() => after.assertAccepting('n7', '12'), (err: unknown) => err instanceof BerthError && err.code === 'NODE_DRAINED'
      && /node n7 is drained for container jobs since 2026-03-01T10:00:00\.000Z \(reason: new disks, later\); job 12 was not started here\. An admin ends the drain with: berth resume --nodes n7/.test(err.message));
    assert.equal(after.resume(), true);
    assert.equal(after.resume(), false);
    assert.equal(new DrainStore(dir).get().drained, false);
  });

  it('wants a reason, and says so', () => {
    const store = new DrainStore(mkdtempSync(path.join(os.tmpdir(), 'drain-')));
    assert.throws(() => store.drain('  ', 'root'), /a drain needs a reason/);
    assert.equal(store.get().drained, false);
  });

  it('does not treat a damaged drain file as resumed', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'drain-'));
    writeFileSync(path.join(dir, 'drain.json'), '{"drained": tr');
    assert.throws(() => new DrainStore(dir), /drain\.json is damaged .*fix it or delete it to resume the node/);
    assert.match(readFileSync(path.join(dir, 'drain.json'), 'utf8'), /tr$/, 'left for the admin to look at');
  });
});
