import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from '../../services/shared/errors';
import { ImageService } from '../../services/agent/images/image-service';
import { DIGEST, harness, IMAGE } from './fakes/helpers';

describe('image service', () => {
  it('resolves a tag to its digest and pulls repository@digest once for 16 concurrent callers', async () => {
    const h = harness();
    h.engine.pullDelayMs = 30;
    const results = await Promise.all(Array.from({ length: 16 }, () => h.images.ensure(IMAGE)));
    const pulls = h.engine.calls.filter((c) => c.startsWith('pull'));
    assert.deepEqual(pulls, [`pull 127.0.0.1:5000/berth/demo@${DIGEST}`]);
    assert.equal(results.filter((r) => r.pulled).length, 1);
    for (const r of results) assert.equal(r.digestRef, `127.0.0.1:5000/berth/demo@${DIGEST}`);
    assert.equal(h.images.pullsInFlight, 0);
  });

  it('does not pull an image that is present, and does not ask the registry for a digest reference', async () => {
    const h = harness();
    const ref = `127.0.0.1:5000/berth/demo@${DIGEST}`;
    h.engine.images.add(ref);
    const r = await h.images.ensure(ref);
    assert.equal(r.pulled, false);
    assert.deepEqual(h.engine.calls, []);
  });

  it('says the image was not found, naming image and registry', async () => {
    const h = harness();
    await assert.rejects(h.images.ensure('127.0.0.1:5000/berth/missing:1'), (e: unknown) => {
      assert.ok(e instanceof BerthError);
      assert.equal(e.code, 'IMAGE_NOT_FOUND');
      assert.match(e.message, /image '127.0.0.1:5000\/berth\/missing:1' was not found in registry 127.0.0.1:5000/);
      return true;
    });
  });

  it('says the registry is unreachable when it is down', async () => {
    const h = harness();
    h.engine.failOn.set('resolve', new Error('Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'));
    await assert.rejects(h.images.ensure(IMAGE), (e: unknown) => e instanceof BerthError && e.code === 'REGISTRY_UNAVAILABLE' && /could not be reached/.test(e.message));
  });

  it('says the registry is unreachable when the proxy in front of it says so (502, 503, 504)', async () => {
    for (const status of ['502 Bad Gateway', '503 Service Unavailable', '504 Gateway Timeout']) {
      const h = harness();
      h.engine.failOn.set('resolve', new Error(`(HTTP code 500) server error - received unexpected HTTP status: ${status}`));
      await assert.rejects(h.images.ensure(IMAGE), (e: unknown) => e instanceof BerthError && e.code === 'REGISTRY_UNAVAILABLE' && e.message.includes(status));
    }
    const h = harness();
    h.engine.failOn.set('resolve', new Error('(HTTP code 500) server error - received unexpected HTTP status: 500 Internal Server Error'));
    await assert.rejects(h.images.ensure(IMAGE), (e: unknown) => e instanceof BerthError && e.code === 'PULL_FAILED', 'a registry that answers 500 itself was reached');
  });

  it('gives every waiter the failure of a shared pull, and lets a later call retry', async () => {
    const h = harness();
    h.engine.pullDelayMs = 20;
    h.engine.failOn.set('pull', new Error('unexpected EOF'));
    const all = await Promise.allSettled(Array.from({ length: 4 }, () => h.images.ensure(IMAGE)));
    assert.ok(all.every((r) => r.status === 'rejected'));
    assert.equal(h.engine.calls.filter((c) => c.startsWith('pull')).length, 1);
    h.engine.failOn.delete('pull');
    await h.images.ensure(IMAGE);
    assert.equal(h.engine.calls.filter((c) => c.startsWith('pull')).length, 2);
  });

  it('refuses a malformed reference before contacting anything', async () => {
    const h = harness();
    await assert.rejects(h.images.ensure('Bad Image'), /malformed/);
    assert.deepEqual(h.engine.calls, []);
  });
});

describe('image service with pull-through mirrors', () => {
  const mirrored = (host: string) => `${host}/berth/demo@${DIGEST}`;

  it('pulls by digest through the first mirror and creates containers from that name', async () => {
    const h = harness();
    const images = new ImageService(h.engine, h.engine, { timeoutMs: 1000, inactivityMs: 1000 }, h.log, { '127.0.0.1:5000': ['mirror-a:5000', 'mirror-b:5000'] });
    const r = await images.ensure(IMAGE);
    assert.equal(r.localRef, mirrored('mirror-a:5000'));
    assert.equal(r.digestRef, `127.0.0.1:5000/berth/demo@${DIGEST}`);
    assert.deepEqual(h.engine.calls.filter((c) => c.startsWith('pull')), [`pull ${mirrored('mirror-a:5000')}`]);
    const again = await images.ensure(IMAGE);
    assert.equal(again.pulled, false);
    assert.equal(again.localRef, mirrored('mirror-a:5000'));
  });

  it('falls back to the next mirror, then to the registry itself', async () => {
    const h = harness();
    const failing = new Set([mirrored('mirror-a:5000'), mirrored('mirror-b:5000')]);
    const pull = h.engine.pull.bind(h.engine);
    h.engine.pull = async (ref, opts) => {
      if (failing.has(ref)) {
        h.engine.calls.push(`pull ${ref}`);
        throw new Error('connection refused');
      }
      return pull(ref, opts);
    };
    const images = new ImageService(h.engine, h.engine, { timeoutMs: 1000, inactivityMs: 1000 }, h.log, { '127.0.0.1:5000': ['mirror-a:5000', 'mirror-b:5000'] });
    const r = await images.ensure(IMAGE);
    assert.equal(r.localRef, `127.0.0.1:5000/berth/demo@${DIGEST}`);
    assert.deepEqual(h.engine.calls.filter((c) => c.startsWith('pull')).map((c) => c.split(' ')[1]!.split('/')[0]), ['mirror-a:5000', 'mirror-b:5000', '127.0.0.1:5000']);
  });
});
