// Resolves an image reference to its manifest digest by asking the registry directly
// (HEAD /v2/NAME/manifests/TAG), the way `docker buildx imagetools inspect` does. Asking
// dockerd (GET /distribution) would also fetch the image config blob on every call.
// Registries on loopback are spoken to over plain HTTP, as dockerd does; others over HTTPS.
// Anonymous bearer tokens are handled; site and per-user credentials come with issue #4.
import { createHash } from 'node:crypto';
import { parseImageReference } from './reference';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface DigestResolver {
  resolveDigest(ref: string): Promise<string>;
}

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
}

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '');
  return h === 'localhost' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function describeFetchError(err: unknown, url: string): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? '';
  if (code === 'ECONNREFUSED') return `${url}: connection refused`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `${url}: no such host`;
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || (err as Error).name === 'TimeoutError') return `${url}: i/o timeout`;
  return `${url}: ${cause?.message ?? (err as Error).message}`;
}

export class RegistryClient implements DigestResolver {
  constructor(private readonly timeoutMs = 15_000) {}

  async resolveDigest(text: string): Promise<string> {
    const ref = parseImageReference(text);
    const host = ref.domain === '' || ref.domain === 'docker.io' ? 'registry-1.docker.io' : ref.domain;
    const repo = host === 'registry-1.docker.io' && !ref.path.includes('/') ? `library/${ref.path}` : ref.path;
    const url = `${isLoopback(host) ? 'http' : 'https'}://${host}/v2/${repo}/manifests/${ref.tag ?? 'latest'}`;
    let res = await this.request('HEAD', url);
    if (res.status === 401) {
      const token = await this.anonymousToken(res.headers.get('www-authenticate') ?? '', url);
      res = await this.request('HEAD', url, token);
    }
    if (res.status === 404) throw new RegistryError('manifest unknown, HTTP 404');
    if (res.status === 401 || res.status === 403) throw new RegistryError(`registry ${host} refused anonymous access (HTTP ${res.status}): this image needs credentials`);
    if (res.status >= 500) throw new RegistryError(`registry ${host} failed: HTTP ${res.status}; server gave HTTP response ${res.status}`);
    if (res.status !== 200) throw new RegistryError(`registry ${host} answered HTTP ${res.status} for ${url}`);
    const digest = res.headers.get('docker-content-digest');
    if (digest && /^sha256:[a-f0-9]{64}$/.test(digest)) return digest;
    const body = await this.request('GET', url);
    return 'sha256:' + createHash('sha256').update(Buffer.from(await body.arrayBuffer())).digest('hex');
  }

  private async request(method: string, url: string, token?: string): Promise<Response> {
    const headers: Record<string, string> = { Accept: ACCEPT };
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      return await fetch(url, { method, headers, signal: AbortSignal.timeout(this.timeoutMs), redirect: 'follow' });
    } catch (err) {
      throw new RegistryError(describeFetchError(err, url), { cause: err });
    }
  }

  private async anonymousToken(challenge: string, url: string): Promise<string> {
    const params = new Map([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    const realm = params.get('realm');
    if (!/^bearer /i.test(challenge) || !realm) throw new RegistryError(`registry for ${url} needs credentials (challenge '${challenge}')`);
    const q = new URLSearchParams();
    if (params.get('service')) q.set('service', params.get('service')!);
    if (params.get('scope')) q.set('scope', params.get('scope')!);
    const res = await this.request('GET', `${realm}?${q.toString()}`);
    if (!res.ok) throw new RegistryError(`token service ${realm} refused anonymous access (HTTP ${res.status})`);
    const json = (await res.json()) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!token) throw new RegistryError(`token service ${realm} returned no token`);
    return token;
  }
}
