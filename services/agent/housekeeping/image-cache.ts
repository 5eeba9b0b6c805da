// The node's image cache as admins see it (berth images, berth prune) and as the scheduled
// GC runs it: one object holding the engine, the use log, the disk and the GC settings.
import { statfs } from 'node:fs/promises';
import type { Logger } from '../logger';
import { type CachedImage, collectImages, type DiskUsage, type ImageGcEngine, type ImageGcPolicy, type ImageGcResult, type ImageUseLog } from './image-gc';

export interface ImageView extends CachedImage {
  lastUsed?: number;
  inUse: boolean;
}

export class ImageCache {
  constructor(
    private readonly engine: ImageGcEngine,
    private readonly uses: ImageUseLog,
    private readonly disk: () => Promise<DiskUsage>,
    private readonly policy: ImageGcPolicy,
    private readonly log: Logger,
  ) {}

  /** dockerd's file system, from its DockerRootDir (asked once, when first needed) */
  static diskOf(dataRoot: () => Promise<string>): () => Promise<DiskUsage> {
    let root: Promise<string> | undefined;
    return async () => {
      root ??= dataRoot();
      const st = await statfs(await root);
      return { totalBytes: st.blocks * st.bsize, usedBytes: (st.blocks - st.bavail) * st.bsize };
    };
  }

  async list(): Promise<{ images: ImageView[]; usagePercent: number }> {
    const [images, inUse, disk] = await Promise.all([this.engine.listImages(), this.engine.imagesInUse(), this.disk()]);
    return {
      images: images.map((i) => ({ ...i, lastUsed: this.uses.lastUsed(i.id), inUse: inUse.has(i.id) })),
      usagePercent: disk.totalBytes ? (100 * disk.usedBytes) / disk.totalBytes : 0,
    };
  }

  /** The scheduled GC, or an admin's prune: allUnused ignores the watermarks. */
  async collect(opts: { dryRun?: boolean; allUnused?: boolean } = {}): Promise<ImageGcResult> {
    const policy: ImageGcPolicy = {
      ...this.policy,
      dryRun: opts.dryRun ?? this.policy.dryRun,
      ...(opts.allUnused ? { highPercent: 0, lowPercent: 0 } : {}),
    };
    const real = await this.disk();
    // every unused image past the minimum age: as if the disk were full and had to be emptied
    const disk = async (): Promise<DiskUsage> => (opts.allUnused ? { ...real, usedBytes: Number.MAX_SAFE_INTEGER } : real);
    const res = await collectImages({ engine: this.engine, disk, uses: this.uses, policy, log: this.log });
    return { ...res, usagePercent: real.totalBytes ? (100 * real.usedBytes) / real.totalBytes : 0 };
  }
}
