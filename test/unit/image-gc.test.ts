import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CachedImage, collectImages, type ImageGcEngine } from '../../services/agent/housekeeping/image-gc';
import { silentLogger } from '../../services/agent/logger';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-11-29T12:00:00Z');

function img(id: string, sizeGb: number, createdHoursAgo: number): CachedImage {
  return { id, repoDigests: [`reg/${id}@sha256:${id.padEnd(64, '0')}`], repoTags: [], sizeBytes: sizeGb * 1e9, created: (NOW - createdHoursAgo * HOUR) / 1000 };
}

function setup(usedGb: number, inUse: string[] = [], lastUsedHoursAgo: Record<string, number> = {}) {
  const images = [img('a', 10, 100), img('b', 10, 100), img('c', 10, 100), img('young', 10, 0.1)];
  const removed: string[] = [];
  const engine: ImageGcEngine = {
    listImages: async () => images.filter((i) => !removed.includes(i.id)),
    imagesInUse: async () => new Set(inUse),
    removeImage: async (id) => void removed.push(id),
  };
  const forgotten: string[] = [];
  const uses = {
    lastUsed: (id: string) => (id in lastUsedHoursAgo ? NOW - lastUsedHoursAgo[id]! * HOUR : undefined),
    forget: (id: string) => void forgotten.push(id),
  };
  const run = (dryRun = false) => collectImages({
    engine, disk: async () => ({ usedBytes: usedGb * 1e9, totalBytes: 100e9 }), uses,
    policy: { highPercent: 85, lowPercent: 70, minAgeMs: HOUR, dryRun }, log: silentLogger(), now: NOW,
  });
  return { run, removed, forgotten };
}

describe('image cache GC', () => {
  it('does nothing below the high watermark', async () => {
    const s = setup(80);
    const r = await s.run();
    assert.deepEqual(r.removed, []);
    assert.equal(r.skipped, 'below the high watermark');
  });

  it('removes least recently used images first, down to the low watermark', async () => {
    // 90 % used: 20 GB must go; c was used 50 h ago, a 10 h ago, b never (created 100 h ago)
    const s = setup(90, [], { a: 10, c: 50 });
    const r = await s.run();
    assert.deepEqual(s.removed, ['b', 'c']);
    assert.equal(r.freedBytes, 20e9);
    assert.deepEqual(s.forgotten, ['b', 'c']);
  });

  it('never removes an image a container uses, nor one younger than the minimum age', async () => {
    const s = setup(100, ['b']);
    await s.run();
    assert.ok(!s.removed.includes('b'));
    assert.ok(!s.removed.includes('young'));
    assert.deepEqual(s.removed.sort(), ['a', 'c']);
  });

  it('removes nothing in dry-run mode but reports what it would remove', async () => {
    const s = setup(90);
    const r = await s.run(true);
    assert.deepEqual(s.removed, []);
    assert.equal(r.removed.length, 2);
  });
});

describe('image cache admin', () => {
  it('prunes every unused image past the minimum age with allUnused, reporting the real disk usage', async () => {
    const { ImageCache } = await import('../../services/agent/housekeeping/image-cache');
    const removed: string[] = [];
    // this API takes the real clock: 'young' is made just now
    const images = [img('a', 1, 100), img('b', 1, 100), { ...img('young', 1, 0), created: Date.now() / 1000 }];
    const cache = new ImageCache({
      listImages: async () => images.filter((i) => !removed.includes(i.id)),
      imagesInUse: async () => new Set(['b']),
      removeImage: async (id) => void removed.push(id),
    }, { lastUsed: () => undefined, forget: () => undefined }, async () => ({ usedBytes: 10e9, totalBytes: 100e9 }),
    { highPercent: 85, lowPercent: 70, minAgeMs: HOUR, dryRun: false }, silentLogger());
    assert.equal((await cache.collect()).skipped, 'below the high watermark');
    const r = await cache.collect({ allUnused: true });
    assert.deepEqual(removed, ['a']);
    assert.equal(r.usagePercent, 10);
    const listed = await cache.list();
    assert.deepEqual(listed.images.map((i) => [i.id, i.inUse]), [['b', true], ['young', false]]);
  });
});
