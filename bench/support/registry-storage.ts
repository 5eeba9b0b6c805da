// The sandbox registries' filesystem storage, for benchmarks that push big images and must
// leave nothing behind (the registry has no delete API enabled).
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { PushedLayers } from '../../test/support/images';

/** scripts/sandbox.d/common.sh's STATE_DIR: where the registries keep their storage */
export const STATE_DIR = '/var/lib/berth-sandbox';

/** removes a repository and its blobs from a registry's filesystem storage */
export function dropFromStorage(dataDir: string, repo: string, image: PushedLayers): void {
  const v2 = path.join(dataDir, 'docker/registry/v2');
  rmSync(path.join(v2, 'repositories', repo), { recursive: true, force: true });
  for (const d of [...image.blobs, image.manifestDigest]) {
    const hex = d.slice('sha256:'.length);
    rmSync(path.join(v2, 'blobs/sha256', hex.slice(0, 2), hex), { recursive: true, force: true });
  }
}
