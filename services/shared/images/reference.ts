// Docker image references, checked with the grammar of the distribution project
// (github.com/distribution/reference) so that a malformed one is refused with a reason
// before dockerd or a registry sees it.
import { BerthError } from '../errors';

export interface ImageReference {
  /** registry host[:port], or '' when the reference names none */
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
  /** domain/path (or path) — what `repo@digest` and `repo:tag` are built from */
  repository: string;
  /** the reference as dockerd should be given it */
  text: string;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN = /^(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

function invalid(ref: string, why: string): BerthError {
  return new BerthError('INVALID_IMAGE_REFERENCE', `image reference '${ref}' is malformed: ${why}; write it as REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:DIGEST`);
}

export function parseImageReference(ref: string): ImageReference {
  if (ref.length === 0) throw invalid(ref, 'it is empty');
  if (ref.length > 512) throw invalid(ref.slice(0, 40) + '…', 'it is longer than 512 characters');
  if (/\s/.test(ref)) throw invalid(ref, 'it contains white space');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(ref, `'${digest}' is not a sha256 digest (sha256: and 64 lowercase hex digits)`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `tag '${tag}' is not valid (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  const parts = rest.split('/');
  let domain = '';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    domain = first;
    parts.shift();
    if (!DOMAIN.test(domain)) throw invalid(ref, `registry '${domain}' is not a valid host[:port]`);
  }
  if (parts.length === 0 || parts.some((p) => p === '')) throw invalid(ref, 'it has an empty path component');
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) throw invalid(ref, `path component '${p}' must be lowercase letters and digits separated by . _ __ or -`);
  }
  const path = parts.join('/');
  const repository = domain ? `${domain}/${path}` : path;
  if (repository.length > 255) throw invalid(ref, 'the repository name is longer than 255 characters');
  const text = repository + (tag ? `:${tag}` : '') + (digest ? `@${digest}` : '');
  return { domain, path, tag, digest, repository, text };
}

const ENROOT_SCHEME = /^(docker|dockerd|podman):\/\//;

/**
 * A job's image as pyxis and enroot users write it, in Docker's form: enroot's URI
 * `docker://[USER@][REGISTRY#]IMAGE[:TAG]` (also `dockerd://` and `podman://`, which name an
 * image of the local daemon there; berth always takes it from the registry), and the bare
 * `REGISTRY#IMAGE[:TAG]` pyxis takes. USER is enroot's name for the credentials to use: berth
 * uses the job user's own `docker login` for the registry, so it is left out. A path (pyxis
 * runs a squashfs file) is not an image berth can run. Anything else is returned as it is.
 */
export function dockerFormOf(ref: string): string {
  if (ref.startsWith('/') || ref.startsWith('./') || ref.startsWith('../') || /\.(sqsh|squashfs)$/.test(ref)) {
    throw new BerthError('INVALID_IMAGE_REFERENCE', `image '${ref}' is a file: berth runs Docker images from a registry, not squashfs files; push the image to your site's registry (docker push) and give its REGISTRY/NAME:TAG`);
  }
  const scheme = ENROOT_SCHEME.exec(ref);
  let r = scheme ? ref.slice(scheme[0].length) : ref;
  const hash = r.indexOf('#');
  if (hash >= 0) {
    let registry = r.slice(0, hash);
    registry = registry.slice(registry.lastIndexOf('@') + 1);
    const image = r.slice(hash + 1);
    if (!registry || !image) throw invalid(ref, `${!registry ? 'nothing before' : 'nothing after'} '#': enroot's form is REGISTRY#IMAGE[:TAG]`);
    r = `${registry}/${image}`;
  } else if (scheme) {
    // docker://USER@IMAGE (no registry): USER is not a digest
    const at = r.indexOf('@');
    if (at >= 0 && !r.startsWith('sha256:', at + 1)) r = r.slice(at + 1);
  }
  return r;
}

/** A job's --container-image in any form a user may write it (dockerFormOf), parsed. */
export function parseJobImageReference(ref: string): ImageReference {
  return parseImageReference(dockerFormOf(ref));
}

/** The reference dockerd should pull and run once the digest is known: repository@digest. */
export function pinned(ref: ImageReference, digest: string): string {
  return `${ref.repository}@${digest}`;
}
