// Image cache garbage collection, kubelet-style: images stay on the node between jobs; when
// the engine's disk passes the high watermark, the least recently used images are removed
// until usage is back under the low one. Images used by any container (running jobs'
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
}

export interface ImageGcResult {
  usagePercent: number;
  removed: { id: string; ref: string; sizeBytes: number }[];
  freedBytes: number;
  skipped?: string;
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
  const { engine, policy, log } = opts;
  const now = opts.now ?? Date.now();
  const disk = await opts.disk();
  const usagePercent = disk.totalBytes > 0 ? (100 * disk.usedBytes) / disk.totalBytes : 0;
  if (usagePercent < policy.highPercent) return { usagePercent, removed: [], freedBytes: 0, skipped: 'below the high watermark' };
  const target = Math.max(0, disk.usedBytes - (policy.lowPercent / 100) * disk.totalBytes);
  const [images, inUse] = await Promise.all([engine.listImages(), engine.imagesInUse()]);
  const lastUse = (img: CachedImage): number => opts.uses.lastUsed(img.id) ?? img.created * 1000;
  const candidates = images
    .filter((img) => !inUse.has(img.id) && now - lastUse(img) >= policy.minAgeMs)
    .sort((a, b) => lastUse(a) - lastUse(b));
  const removed: ImageGcResult['removed'] = [];
  let freed = 0;
  for (const img of candidates) {
    if (freed >= target) break;
    const entry = { id: img.id, ref: label(img), sizeBytes: img.sizeBytes };
    if (policy.dryRun) {
      log.info('image GC (dry run): would remove image', { image: entry.ref, id: img.id, sizeBytes: img.sizeBytes, lastUsed: new Date(lastUse(img)).toISOString() });
    } else {
      try {
        await engine.removeImage(img.id);
      } catch (err) {
        log.warn('image GC: could not remove image', { image: entry.ref, id: img.id, error: String(err) });
        continue;
      }
      opts.uses.forget(img.id);
      log.info('image GC: removed image', { image: entry.ref, id: img.id, sizeBytes: img.sizeBytes, lastUsed: new Date(lastUse(img)).toISOString() });
    }
    removed.push(entry);
    freed += img.sizeBytes;
  }
  if (freed < target) log.warn('image GC: could not get under the low watermark', { usagePercent, freedBytes: freed, neededBytes: target });
  return { usagePercent, removed, freedBytes: freed };
}
