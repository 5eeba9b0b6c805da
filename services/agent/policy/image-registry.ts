// Which registry an image reference pulls from, as dockerd normalizes it: no registry part
// means Docker Hub (shared/images/registry-host.ts has its other names). Image
// ids and bare hex are refused: dockerd resolves them to whatever local image has that id,
// which may have come from anywhere.
import { parseImageReference } from '../../shared/images/reference';
import { registryHost } from '../../shared/images/registry-host';

const IMAGE_ID = /^(?:sha256:)?[0-9a-f]{1,64}$/i;

/** A registry as written in a policy, normalized for comparison. */
export const normalizeRegistry = registryHost;

/** Why `ref` is not from one of `registries`, or undefined when it is. */
export function registryViolation(ref: string, registries: readonly string[]): string | undefined {
  const allowed = registries.map(normalizeRegistry);
  const list = registries.length ? registries.join(', ') : 'a registry of the site (none is configured: registries in the site rules, /etc/berth/site.json, or in the policy)';
  if (IMAGE_ID.test(ref)) return `it must name an image from ${list} by REGISTRY/NAME:TAG or @sha256:DIGEST, not an image id`;
  let domain: string;
  try {
    domain = parseImageReference(ref).domain;
  } catch (err) {
    return `it is not a valid image reference (${(err as Error).message.replace(/^image reference '.*?' is malformed: /, '')}); it must be an image from ${list}`;
  }
  const from = registryHost(domain);
  if (allowed.includes(from)) return undefined;
  return `it must be an image from ${list} (${ref} is from ${from})`;
}
