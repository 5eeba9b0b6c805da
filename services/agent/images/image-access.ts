// Which users may start an image that was pulled with one user's own registry credentials
// (stateDir/image-access.json). Such an image is private: it is on the node only because that
// user could read it, so another user's job may use the cached copy only after the registry
// has confirmed, under that user's credentials, that they can read the same digest. Images
// pulled anonymously or with the site's credentials are not listed: every job may use them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-write';

export interface ImageAccess {
  /** uids confirmed for a private image; undefined when the image is not private */
  allowed(digestRef: string): ReadonlySet<number> | undefined;
  /** records that uid could read digestRef with their own credentials */
  grant(digestRef: string, uid: number): void;
  /** a fresh pull with uid's own credentials: private to uid alone */
  reset(digestRef: string, uid: number): void;
  forget(digestRef: string): void;
}

export class MemoryImageAccess implements ImageAccess {
  protected entries = new Map<string, Set<number>>();
  allowed(digestRef: string): ReadonlySet<number> | undefined {
    return this.entries.get(digestRef);
  }
  grant(digestRef: string, uid: number): void {
    const set = this.entries.get(digestRef) ?? new Set<number>();
    if (set.has(uid)) return;
    set.add(uid);
    this.entries.set(digestRef, set);
    this.changed();
  }
  reset(digestRef: string, uid: number): void {
    this.entries.set(digestRef, new Set([uid]));
    this.changed();
  }
  forget(digestRef: string): void {
    if (this.entries.delete(digestRef)) this.changed();
  }
  protected changed(): void {}
}

export class FileImageAccess extends MemoryImageAccess {
  private readonly file: string;

  constructor(stateDir: string) {
    super();
    this.file = path.join(stateDir, 'image-access.json');
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, number[]>;
      for (const [ref, uids] of Object.entries(parsed)) if (Array.isArray(uids)) this.entries.set(ref, new Set(uids.filter(Number.isInteger)));
    } catch (err) {
      // no file: nothing is private yet. An unreadable one would make private images look
      // public, so berthd stops with the reason instead (it is written by rename, never torn).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${this.file} is unreadable (${(err as Error).message}); fix or remove it and remove the private images it listed`);
    }
  }

  protected override changed(): void {
    writeFileAtomic(this.file, JSON.stringify(Object.fromEntries([...this.entries].map(([k, v]) => [k, [...v]]))), { mode: 0o600 });
  }
}
