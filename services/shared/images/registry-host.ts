// Which registry an image comes from, said one way everywhere (policy, site rules, credentials,
// accounting, resolve): no registry part means Docker Hub, which also goes by index.docker.io,
// registry-1.docker.io and registry.hub.docker.com; hosts compare lowercased; a URL (as docker
// login files key them) counts by its host[:port].
export const DOCKER_HUB = 'docker.io';
/** the host Docker Hub's registry API answers on */
export const DOCKER_HUB_API = 'registry-1.docker.io';

const HUB_ALIASES = new Set(['', DOCKER_HUB, 'index.docker.io', DOCKER_HUB_API, 'registry.hub.docker.com']);

/** host[:port] of a registry (or of the domain part of an image reference), Docker Hub as docker.io */
export function registryHost(hostOrUrl: string): string {
  const host = hostOrUrl.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}
