// Image cache garbage collection, kubelet-style: images stay on the node between jobs; when
// the engine's disk passes the high watermark, the least recently used images are removed
// until usage is back under the low one; with a budget (imageGc.budgetBytes, a diskless
// node's RAM) the same band applies to the images' bytes within it. Images used by any container (running jobs'
// included) and images younger than the minimum age are never removed. Every removal, or
// would-be removal in dry-run mode, is logged. node-cron only schedules this function.
import type { Logger } from '../logger';

export interface CachedImage {
  id: string;
  repoDigests: string[];
  repoTags: string[];
  sizeBytes: number;
  /** seconds since the epoch */
  created: number;
}

export interface ImageGcEngine {
  listImages(): Promise<CachedImage[]>;
  /** image ids some container (any state) was created from */
  imagesInUse(): Promise<Set<string>>;
  removeImage(id: string): Promise<void>;
}

export interface DiskUsage {
  usedBytes: number;
  totalBytes: number;
}

export interface ImageGcPolicy {
  highPercent: number;
  lowPercent: number;
  minAgeMs: number;
  dryRun: boolean;
  /** imageGc.budgetBytes: the watermarks apply to the images' bytes within it as well */
  budgetBytes?: number;
}

export interface ImageGcResult {
  usagePercent: number;
  removed: { id: string; ref: string; sizeBytes: number }[];
  freedBytes: number;
  skipped?: string;
  /** the images' bytes as a percentage of the budget, when the node has one */
  budgetPercent?: number;
}

/** Last use per image id, as berthd saw jobs start; images never seen count from their creation. */
export interface ImageUseLog {
  lastUsed(id: string): number | undefined;
  forget(id: string): void;
}

function label(img: CachedImage): string {
  return img.repoDigests[0] ?? img.repoTags[0] ?? img.id.slice(0, 19);
}

export async function collectImages(opts: {
  engine: ImageGcEngine;
  disk: () => Promise<DiskUsage>;
  uses: ImageUseLog;
  policy: ImageGcPolicy;
  log: Logger;
  now?: number;
}): Promise<ImageGcResult> {
  const { engine, policy } = opts;
  const now = opts.now ?? Date.now();
  const disk = await opts.disk();
  const usagePercent = disk.totalBytes > 0 ? (100 * disk.usedBytes) / disk.totalBytes : 0;
  const below = { usagePercent, removed: [], freedBytes: 0, skipped: 'below the high watermark' };
  if (usagePercent < policy.highPercent && policy.budgetBytes === undefined) return below;
  const [images, inUse] = await Promise.all([engine.listImages(), engine.imagesInUse()]);
  const cacheBytes = cachedBytes(images);
  const budgetPercent = policy.budgetBytes ? (100 * cacheBytes) / policy.budgetBytes : undefined;
  const overDisk = usagePercent >= policy.highPercent;
  const overBudget = budgetPercent !== undefined && budgetPercent >= policy.highPercent;
  if (!overDisk && !overBudget) return { ...below, ...(budgetPercent !== undefined ? { budgetPercent } : {}) };
  // the band applies to the disk and to the budget alike: free what the fuller of them needs
  const target = Math.max(
    overDisk ? disk.usedBytes - (policy.lowPercent / 100) * disk.totalBytes : 0,
    overBudget ? cacheBytes - (policy.lowPercent / 100) * policy.budgetBytes! : 0,
    0,
  );
  const lastUse = lastUseOf(opts.uses);
  const candidates = images
    .filter((img) => !inUse.has(img.id) && now - lastUse(img) >= policy.minAgeMs)
    .sort((a, b) => lastUse(a) - lastUse(b));
  const { removed, freedBytes } = await evict({ ...opts, candidates, target, dryRun: policy.dryRun, why: 'image GC' });
  if (freedBytes < target) opts.log.warn('image GC: could not get under the low watermark', { usagePercent, budgetPercent, freedBytes, neededBytes: target });
  return { usagePercent, removed, freedBytes, ...(budgetPercent !== undefined ? { budgetPercent } : {}) };
}

/** the bytes the cache holds, as `docker images` counts them (a layer shared by two images counts twice: an over-estimate) */
export function cachedBytes(images: readonly CachedImage[]): number {
  return images.reduce((sum, i) => sum + i.sizeBytes, 0);
}

function lastUseOf(uses: ImageUseLog): (img: CachedImage) => number {
  return (img) => uses.lastUsed(img.id) ?? img.created * 1000;
}

export interface RoomResult {
  /** whether needBytes more now fit in the budget */
  fits: boolean;
  removed: ImageGcResult['removed'];
  freedBytes: number;
  /** what the cache holds after the removals, and how much of it containers use */
  cacheBytes: number;
  inUseBytes: number;
}

/**
 * Room for needBytes more within budgetBytes, made before a pull: unused images go, least
 * recently used first, younger than the GC's minimum age too (a job waits on this pull; an
 * image it evicts only costs a pull again). Images a container uses are never removed.
 */
export async function makeRoom(opts: {
  engine: ImageGcEngine;
  uses: ImageUseLog;
  budgetBytes: number;
  needBytes: number;
  log: Logger;
}): Promise<RoomResult> {
  const [images, inUse] = await Promise.all([opts.engine.listImages(), opts.engine.imagesInUse()]);
  const cacheBytes = cachedBytes(images);
  const inUseBytes = cachedBytes(images.filter((i) => inUse.has(i.id)));
  const target = cacheBytes + opts.needBytes - opts.budgetBytes;
  if (target <= 0) return { fits: true, removed: [], freedBytes: 0, cacheBytes, inUseBytes };
  const lastUse = lastUseOf(opts.uses);
  const candidates = images.filter((img) => !inUse.has(img.id)).sort((a, b) => lastUse(a) - lastUse(b));
  const { removed, freedBytes } = await evict({ ...opts, candidates, target, dryRun: false, why: 'image budget' });
  return { fits: freedBytes >= target, removed, freedBytes, cacheBytes: cacheBytes - freedBytes, inUseBytes };
}

/** Removes candidates in order until target bytes are freed; every removal (or would-be one) is logged. */
async function evict(opts: { engine: ImageGcEngine; uses: ImageUseLog; log: Logger; candidates: CachedImage[]; target: number; dryRun: boolean; why: string }): Promise<{ removed: ImageGcResult['removed']; freedBytes: number }> {
  const { engine, log } = opts;
  const lastUse = lastUseOf(opts.uses);
  const removed: ImageGcResult['removed'] = [];
  let freed = 0;
  for (const img of opts.candidates) {
    if (freed >= opts.target) break;
    const entry = { id: img.id, ref: label(img), sizeBytes: img.sizeBytes };
    if (opts.dryRun) {
      log.info(`${opts.why} (dry run): would remove image`, { image: entry.ref, id: img.id, sizeBytes: img.sizeBytes, lastUsed: new Date(lastUse(img)).toISOString() });
    } else {
      try {
        await engine.removeImage(img.id);
      } catch (err) {
        log.warn(`${opts.why}: could not remove image`, { image: entry.ref, id: img.id, error: String(err) });
        continue;
      }
      opts.uses.forget(img.id);
      log.info(`${opts.why}: removed image`, { image: entry.ref, id: img.id, sizeBytes: img.sizeBytes, lastUsed: new Date(lastUse(img)).toISOString() });
    }
    removed.push(entry);
    freed += img.sizeBytes;
  }
  return { removed, freedBytes: freed };
}
