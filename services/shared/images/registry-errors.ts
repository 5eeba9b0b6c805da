// What went wrong between berth and a registry, in words a user can act on: the image is
// not there, the registry cannot be reached, or something else the registry said.
import { BerthError } from '../errors';
import type { ImageReference } from './reference';
import { registryHost } from './registry-host';

function detailOf(err: unknown): string {
  const e = err as { json?: { message?: string }; message?: string } | null;
  // dockerode's prefix ("(HTTP code 404) unexpected - ") says nothing dockerd's message does not
  return (e?.json?.message ?? e?.message ?? String(err)).replace(/^\(HTTP code \d+\) [\w ]+ - /, '').trim();
}

const NOT_FOUND = /manifest unknown|not found|name unknown|does not exist|no such image|repository .* not found/i;
// a proxy in front of a registry that is down (nginx, a load balancer) answers 502, 503 or 504
const UNREACHABLE = /connection refused|ECONNREFUSED|no such host|i\/o timeout|dial tcp|network is unreachable|timeout|EOF|server gave HTTP response|TLS handshake|\b50[234] (Bad Gateway|Service Unavailable|Gateway Timeout)\b/i;

const AUTH = /unauthorized|authentication required|no basic auth credentials|incorrect username or password/i;

export function classifyRegistryError(ref: ImageReference, err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const detail = detailOf(err);
  const registry = registryHost(ref.domain);
  if ((err as { authRefused?: boolean } | null)?.authRefused || AUTH.test(detail)) {
    const todo = (err as { anonymous?: boolean }).anonymous === false
      ? `log in again with docker login ${registry}`
      : `log in with docker login ${registry} (berth reads ~/.docker/config.json, which must be readable only by you), or ask the site admins for access`;
    return new BerthError('IMAGE_ACCESS_DENIED', `image '${ref.text}': ${detail}; ${todo}`, { cause: err });
  }
  if (NOT_FOUND.test(detail)) {
    return new BerthError('IMAGE_NOT_FOUND', `image '${ref.text}' was not found in registry ${registry} (${detail}); check the name and tag, or push the image there first`, { cause: err });
  }
  if (UNREACHABLE.test(detail)) {
    return new BerthError('REGISTRY_UNAVAILABLE', `registry ${registry} could not be reached for image '${ref.text}' (${detail}); ask the site admins to check the registry`, { cause: err });
  }
  return new BerthError('PULL_FAILED', `could not get image '${ref.text}' from registry ${registry}: ${detail}`, { cause: err });
}
