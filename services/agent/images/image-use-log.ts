// When each image was last used by a job on this node (stateDir/image-use.json), for the
// image GC's least-recently-used order. A lost or torn file only makes images count from
// their creation time.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ImageUseLog } from '../housekeeping/image-gc';
import { writeFileAtomic } from '../../shared/atomic-write';

export class FileImageUseLog implements ImageUseLog {
  private readonly file: string;
  private uses: Record<string, number> = {};

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'image-use.json');
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
      if (parsed && typeof parsed === 'object') this.uses = parsed as Record<string, number>;
    } catch {
      this.uses = {};
    }
  }

  lastUsed(id: string): number | undefined {
    return this.uses[id];
  }

  used(id: string, at = Date.now()): void {
    this.uses[id] = at;
    this.save();
  }

  forget(id: string): void {
    delete this.uses[id];
    this.save();
  }

  private save(): void {
    writeFileAtomic(this.file, JSON.stringify(this.uses), { mode: 0o600 });
  }
}
