import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from '../../services/shared/errors';
import { faultOf } from '../../services/shared/fault-class';
import { type CachedImage, collectImages, makeRoom } from '../../services/agent/housekeeping/image-gc';
import { type BudgetEngine, ImageBudget } from '../../services/agent/images/image-budget';
import { ImageService } from '../../services/agent/images/image-service';
import { silentLogger } from '../../services/agent/logger';
import { DIGEST, harness, IMAGE } from './fakes/helpers';

const MB = 1e6;
const HOUR = 3_600_000;
const NOW = Date.parse('2026-12-01T12:00:00Z');

function img(id: string, sizeMb: number): CachedImage {
  return { id, repoDigests: [`reg/${id}@sha256:${id.padEnd(64, '0')}`], repoTags: [], sizeBytes: sizeMb * MB, created: (NOW - 100 * HOUR) / 1000 };
}

/** a fake engine holding images; a pull adds one */
function node(images: CachedImage[], inUse: string[] = [], lastUsedHoursAgo: Record<string, number> = {}) {
  const removed: string[] = [];
  const engine: BudgetEngine = {
    listImages: async () => images.filter((i) => !removed.includes(i.id)),
    imagesInUse: async () => new Set(inUse),
    removeImage: async (id) => void removed.push(id),
    imageSize: async (ref) => images.find((i) => !removed.includes(i.id) && (i.id === ref || i.repoDigests.includes(ref)))?.sizeBytes,
  };
  const uses = {
    lastUsed: (id: string) => (id in lastUsedHoursAgo ? NOW - lastUsedHoursAgo[id]! * HOUR : undefined),
    forget: () => undefined,
  };
  return { engine, uses, removed, images };
}

function budget(n: ReturnType<typeof node>, budgetMb: number, sizes: Record<string, number>) {
  const asked: string[] = [];
  const sizer = {
    imageBytes: async (ref: string) => {
      asked.push(ref);
      const s = sizes[ref];
      if (s === undefined) throw new Error(`${ref}: connection refused`);
      return s * MB;
    },
  };
  return { b: new ImageBudget({ engine: n.engine, uses: n.uses, sizer, budgetBytes: budgetMb * MB, log: silentLogger() }), asked };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<BerthError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof BerthError, `rejects with a BerthError, not ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return err;
}

describe('making room within the image budget before a pull', () => {
  it('removes nothing when the image fits beside the cache', async () => {
    const n = node([img('a', 100)]);
    const r = await makeRoom({ engine: n.engine, uses: n.uses, budgetBytes: 500 * MB, needBytes: 300 * MB, log: silentLogger() });
    assert.equal(r.fits, true);
    assert.deepEqual(n.removed, []);
  });

  it('removes unused images least recently used first, just enough, even ones younger than the GC minimum age', async () => {
    // a used 1 h ago, b 5 h ago, c 0.1 h ago (younger than the GC's hour): b goes first, then a
    const n = node([img('a', 100), img('b', 100), img('c', 100)], [], { a: 1, b: 5, c: 0.1 });
    const r = await makeRoom({ engine: n.engine, uses: n.uses, budgetBytes: 400 * MB, needBytes: 250 * MB, log: silentLogger() });
    assert.equal(r.fits, true);
    assert.deepEqual(n.removed, ['b', 'a']);
    assert.equal(r.cacheBytes, 100 * MB);
  });

  it('never removes an image a container uses, and says when the rest does not make room', async () => {
    const n = node([img('running', 300), img('old', 100)], ['running']);
    const r = await makeRoom({ engine: n.engine, uses: n.uses, budgetBytes: 400 * MB, needBytes: 200 * MB, log: silentLogger() });
    assert.equal(r.fits, false);
    assert.deepEqual(n.removed, ['old']);
    assert.equal(r.inUseBytes, 300 * MB);
  });
});

describe('the image budget at a pull', () => {
  it('fails an image bigger than the whole budget as the job\'s fault, removing nothing', async () => {
    const n = node([img('a', 100)]);
    const { b } = budget(n, 256, { 'reg/big@sha256:1': 300 });
    const err = await rejectsWith(b.reserve('reg/big@sha256:1', [{ ref: 'reg/big@sha256:1' }]), 'IMAGE_TOO_BIG');
    assert.equal(faultOf(err.code), 'job', 'the node stays in service: the image can never run on it');
    assert.match(err.message, /image 'reg\/big@sha256:1' does not fit on this node: its layers are 300 MB, more than the 256 MB this node keeps for images/);
    assert.deepEqual(n.removed, []);
  });

  it('makes room by evicting the old unused image, then the pull goes ahead', async () => {
    const n = node([img('old', 150)]);
    const { b } = budget(n, 256, { 'reg/new@sha256:2': 150 });
    const release = await b.reserve('reg/new@sha256:2', [{ ref: 'reg/new@sha256:2' }]);
    assert.deepEqual(n.removed, ['old']);
    release();
  });

  it('fails as a node condition when images in use hold the budget', async () => {
    const n = node([img('running', 200)], ['running']);
    const { b } = budget(n, 256, { 'reg/new@sha256:3': 100 });
    const err = await rejectsWith(b.reserve('reg/new@sha256:3', [{ ref: 'reg/new@sha256:3' }]), 'DISK_FULL');
    assert.equal(faultOf(err.code), 'node');
    assert.match(err.message, /image budget \(256 MB, imageGc\.budgetBytes\) has no room for image 'reg\/new@sha256:3' \(100 MB\): 200 MB are images that containers on this node use/);
  });

  it('counts the pulls in flight: two pulls that fit one at a time do not both get the room', async () => {
    const n = node([]);
    const { b } = budget(n, 256, { 'reg/x@sha256:4': 150, 'reg/y@sha256:5': 150 });
    const first = await b.reserve('reg/x@sha256:4', [{ ref: 'reg/x@sha256:4' }]);
    const err = await rejectsWith(b.reserve('reg/y@sha256:5', [{ ref: 'reg/y@sha256:5' }]), 'DISK_FULL');
    assert.match(err.message, /150 MB are pulls in flight/);
    first();
    (await b.reserve('reg/y@sha256:5', [{ ref: 'reg/y@sha256:5' }]))();
  });

  it('asks the mirror first, then the origin; with neither answering the pull goes ahead unreserved', async () => {
    const n = node([]);
    const { b, asked } = budget(n, 256, { 'reg/z@sha256:6': 10 });
    (await b.reserve('reg/z@sha256:6', [{ ref: 'mirror/z@sha256:6' }, { ref: 'reg/z@sha256:6' }]))();
    assert.deepEqual(asked, ['mirror/z@sha256:6', 'reg/z@sha256:6']);
    (await b.reserve('reg/gone@sha256:7', [{ ref: 'reg/gone@sha256:7' }]))();
  });

  it('after the pull, removes an image whose unpacked size exceeds the budget and fails the job', async () => {
    const n = node([img('fat', 400)]);
    const { b } = budget(n, 256, {});
    const err = await rejectsWith(b.check('reg/fat@sha256:8', 'fat'), 'IMAGE_TOO_BIG');
    assert.match(err.message, /unpacked it is 400 MB/);
    assert.deepEqual(n.removed, ['fat']);
    await b.check('reg/a@sha256:9', 'absent');
  });
});

describe('the scheduled GC with a budget', () => {
  const policy = { highPercent: 85, lowPercent: 70, minAgeMs: HOUR, dryRun: false };
  const roomyDisk = async () => ({ usedBytes: 10e9, totalBytes: 100e9 });

  it('keeps the images within the band of the budget when the disk is far from full', async () => {
    // 3 × 100 MB in a 320 MB budget: 94 %; down to 70 % (224 MB) means one image goes
    const n = node([img('a', 100), img('b', 100), img('c', 100)], [], { a: 3, b: 2, c: 1 });
    const r = await collectImages({ engine: n.engine, disk: roomyDisk, uses: n.uses, policy: { ...policy, budgetBytes: 320 * MB }, log: silentLogger(), now: NOW });
    assert.deepEqual(n.removed, ['a']);
    assert.equal(Math.round(r.budgetPercent!), 94);
  });

  it('does nothing below the budget\'s high watermark', async () => {
    const n = node([img('a', 100)]);
    const r = await collectImages({ engine: n.engine, disk: roomyDisk, uses: n.uses, policy: { ...policy, budgetBytes: 320 * MB }, log: silentLogger(), now: NOW });
    assert.equal(r.skipped, 'below the high watermark');
    assert.deepEqual(n.removed, []);
  });
});

describe('the image service with a budget', () => {
  it('pulls nothing for an image bigger than the budget, and releases what a pull reserved', async () => {
    const h = harness();
    const ref = `127.0.0.1:5000/berth/demo@${DIGEST}`;
    const n = node([]);
    const tooBig = budget(n, 100, { [ref]: 150 });
    const images = new ImageService(h.engine, h.engine, { timeoutMs: 1000, inactivityMs: 1000 }, h.log, {}, undefined, undefined, undefined, tooBig.b);
    await rejectsWith(images.ensure(IMAGE), 'IMAGE_TOO_BIG');
    assert.deepEqual(h.engine.calls.filter((c) => c.startsWith('pull')), [], 'no pull started');
    assert.deepEqual(tooBig.asked, [ref]);

    // a pull that fits: reserved for its duration only, so a second image of the same size fits after it
    const fits = budget(n, 100, { [ref]: 80, 'reg/next@sha256:2': 80 });
    const ok = new ImageService(h.engine, h.engine, { timeoutMs: 1000, inactivityMs: 1000 }, h.log, {}, undefined, undefined, undefined, fits.b);
    assert.equal((await ok.ensure(IMAGE)).pulled, true);
    (await fits.b.reserve('reg/next@sha256:2', [{ ref: 'reg/next@sha256:2' }]))();
  });
});
