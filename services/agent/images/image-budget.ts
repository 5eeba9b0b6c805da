// The node's image budget (imageGc.budgetBytes), kept at each pull: a diskless node keeps its
// images in RAM (dockerd's data-root on a tmpfs), so the cache must stay within what the site
// gave it, and a pull must not run into the tmpfs's end. Before a pull the registry says how
// many bytes the image is (its manifest); an image bigger than the whole budget is the job's
// fault (IMAGE_TOO_BIG: it can never run on a node of this class, so the node stays in
// service). Otherwise room is made by removing unused images, least recently used first; a
// budget held by images that containers use is the node's condition (DISK_FULL, drained as
// for a full disk). After the pull the image's real, unpacked size is checked again.
// Reservations of pulls in flight count, and room is made for one pull at a time.
import { BerthError, errorMessage } from '../../shared/errors';
import type { RegistryAuth } from '../../shared/images/credentials';
import type { ImageSizer } from '../../shared/images/registry-client';
import type { Logger } from '../logger';
import { type ImageGcEngine, type ImageUseLog, makeRoom } from '../housekeeping/image-gc';

export interface BudgetEngine extends ImageGcEngine {
  /** the local image's unpacked size; undefined when absent */
  imageSize(ref: string): Promise<number | undefined>;
}

/** a pull source: the reference to size and the credentials to ask with */
export interface SizeSource {
  ref: string;
  auth?: RegistryAuth;
}

const MB = 1e6;
const mb = (bytes: number): string => `${(bytes / MB).toFixed(0)} MB`;

export class ImageBudget {
  private reservedBytes = 0;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: {
    engine: BudgetEngine;
    uses: ImageUseLog;
    sizer: ImageSizer;
    budgetBytes: number;
    log: Logger;
  }) {}

  get budgetBytes(): number {
    return this.d.budgetBytes;
  }

  /**
   * Makes room for IMAGE before its pull; returns the release of its reservation (call it once
   * the pull ended, either way). The sources are asked in order (mirrors, then the origin); when
   * none answers, the pull goes ahead unreserved and the check after it still holds.
   */
  async reserve(image: string, sources: readonly SizeSource[]): Promise<() => void> {
    const need = await this.sizeOf(image, sources);
    if (need === undefined) return () => undefined;
    if (need > this.d.budgetBytes) throw this.tooBig(image, need, 'its layers are');
    // one at a time: the room one pull made counts before the next one looks
    const mine = this.turn.then(() => this.room(image, need));
    this.turn = mine.catch(() => undefined);
    await mine;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.reservedBytes -= need;
    };
  }

  /** After the pull: the image as stored, unpacked, must fit too; one that does not is removed again. */
  async check(image: string, localRef: string): Promise<void> {
    const size = await this.d.engine.imageSize(localRef);
    if (size === undefined || size <= this.d.budgetBytes) return;
    try {
      await this.d.engine.removeImage(localRef);
    } catch (err) {
      this.d.log.warn('image budget: could not remove an image bigger than the budget', { image, error: errorMessage(err) });
    }
    throw this.tooBig(image, size, 'unpacked it is');
  }

  private async room(image: string, need: number): Promise<void> {
    const res = await makeRoom({ engine: this.d.engine, uses: this.d.uses, budgetBytes: this.d.budgetBytes, needBytes: need + this.reservedBytes, log: this.d.log });
    if (!res.fits) {
      throw new BerthError('DISK_FULL', `this node's image budget (${mb(this.d.budgetBytes)}, imageGc.budgetBytes) has no room for image '${image}' (${mb(need)}): `
        + `${mb(res.inUseBytes)} are images that containers on this node use${this.reservedBytes ? `, ${mb(this.reservedBytes)} are pulls in flight` : ''}, and no unused image is left to remove; `
        + 'the site admins must look for containers left behind (berth status), or give the node a bigger budget');
    }
    if (res.removed.length) this.d.log.info('image budget: made room for a pull', { image, needBytes: need, removed: res.removed.map((r) => r.ref), freedBytes: res.freedBytes });
    this.reservedBytes += need;
  }

  private async sizeOf(image: string, sources: readonly SizeSource[]): Promise<number | undefined> {
    for (const s of sources) {
      try {
        return await this.d.sizer.imageBytes(s.ref, s.auth);
      } catch (err) {
        this.d.log.warn('image budget: could not ask the image\'s size', { image, from: s.ref, error: errorMessage(err) });
      }
    }
    return undefined;
  }

  private tooBig(image: string, bytes: number, what: string): BerthError {
    return new BerthError('IMAGE_TOO_BIG', `image '${image}' does not fit on this node: ${what} ${mb(bytes)}, more than the ${mb(this.d.budgetBytes)} `
      + 'this node keeps for images (it has no local disk: its images are in memory); it can never run on nodes of this kind: use a smaller image, or nodes with room for it');
  }
}
