// The Docker API side of private images: a job user's `docker run`/`docker create` (through
// berth's AuthZ plugin) may not use a local image that berthd pulled with another user's own
// registry login, unless the registry has confirmed this user before (through a berth job).
// The image (the create's, as docker-request/request.ts reads it) is looked up as dockerd
// would (name, tag, digest or id) and judged by every repository@digest name it carries.
import type { ImageAccess } from './image-access';

export async function privateImageRefusal(image: string, uid: number, access: ImageAccess, repoDigestsOf: (ref: string) => Promise<string[]>): Promise<string | undefined> {
  for (const name of await repoDigestsOf(image)) {
    const allowed = access.allowed(name);
    if (allowed && !allowed.has(uid)) {
      return `image ${image} is on this node only because another user pulled it with their own registry login; `
        + 'run it in a berth job (sbatch --container-image) with your own login, so that the registry can confirm you may read it';
    }
  }
  return undefined;
}
