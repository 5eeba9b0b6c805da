// The image's own /etc/passwd and /etc/group, which the job user's entries are added to.
// Read once per image digest (a digest never changes content) from a short-lived container
// that is created, read and removed without ever running: reading files from a container
// makes dockerd mount its root file system, which costs more than the rest of a prologue.
import { randomBytes } from 'node:crypto';
import type { ContainerEngine } from '../docker/engine';
import { SingleFlight } from '../images/single-flight';
import { LABEL } from './labels';

export interface ImageUserFiles {
  passwd: string | undefined;
  group: string | undefined;
}

export class ImageUserFilesCache {
  private readonly cache = new Map<string, ImageUserFiles>();
  private readonly reads = new SingleFlight<ImageUserFiles>();

  constructor(private readonly engine: ContainerEngine, private readonly node: string, private readonly maxEntries = 64) {}

  async get(digestRef: string): Promise<ImageUserFiles> {
    const hit = this.cache.get(digestRef);
    if (hit) return hit;
    const { value } = await this.reads.do(digestRef, () => this.read(digestRef));
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(digestRef, value);
    return value;
  }

  private async read(digestRef: string): Promise<ImageUserFiles> {
    const id = await this.engine.create({
      name: `berth-${this.node}-probe-${randomBytes(4).toString('hex')}`,
      body: {
        Image: digestRef,
        Entrypoint: ['/.berth-probe-never-runs'],
        Labels: { [LABEL.role]: 'probe', [LABEL.node]: this.node },
        HostConfig: { NetworkMode: 'none' },
      },
    });
    try {
      const [passwd, group] = await Promise.all([this.engine.readFile(id, '/etc/passwd'), this.engine.readFile(id, '/etc/group')]);
      return { passwd: passwd?.toString('utf8'), group: group?.toString('utf8') };
    } finally {
      await this.engine.remove(id);
    }
  }
}
