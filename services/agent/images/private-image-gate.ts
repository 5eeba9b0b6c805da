// The Docker API side of private images: a job user's `docker run`/`docker create` (through
// berth's AuthZ plugin) may not use a local image that berthd pulled with another user's own
// registry login, unless the registry has confirmed this user before (through a berth job).
// The image is looked up as dockerd would (name, tag, digest or id) and judged by every
// repository@digest name it carries.
import { lookup, parseBody } from '../policy/docker-body';
import { parseFieldPath, type FieldPath } from '../policy/field-path';
import type { ImageAccess } from './image-access';

const IMAGE_FIELD = parseFieldPath('Image') as FieldPath;

/** The Image a ContainerCreate body names, read as dockerd reads it (case-folded keys). */
export function createBodyImage(bodyText: string | undefined): string | undefined {
  if (!bodyText) return undefined;
  try {
    const v = lookup(parseBody(bodyText), IMAGE_FIELD).map((i) => i.value).find((x) => typeof x === 'string');
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined; // unparseable bodies are the policy's to refuse
  }
}

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
