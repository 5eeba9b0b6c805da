// Resolves an image reference to its manifest digest by asking the registry directly
// (HEAD /v2/NAME/manifests/TAG), the way `docker buildx imagetools inspect` does. Asking
// dockerd (GET /distribution) would also fetch the image config blob on every call.
// Registries on loopback are spoken to over plain HTTP, as dockerd does; others over HTTPS.
// Basic and Bearer challenges are answered anonymously or with the credentials given
// (site or the job user's, see credentials.ts).
import { createHash } from 'node:crypto';
import type { RegistryAuth } from './credentials';
import { parseImageReference } from './reference';
import { DOCKER_HUB, DOCKER_HUB_API, registryHost } from './registry-host';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Manifest {
  config?: { size?: number };
  layers?: { size?: number }[];
  manifests?: { digest: string; platform?: { os?: string; architecture?: string } }[];
}

/** Node.js's process.arch → the OCI platform architecture */
const OCI_ARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', arm: 'arm' };

/** what a pull of an image will download, asked of the registry before the pull */
export interface ImageSizer {
  imageBytes(ref: string, auth?: RegistryAuth): Promise<number>;
}

export interface DigestResolver {
  /** the manifest digest REF's tag points at, asking with AUTH when given */
  resolveDigest(ref: string, auth?: RegistryAuth): Promise<string>;
  /** succeeds when the registry lets AUTH (or anyone, without) read REPOSITORY@DIGEST */
  checkAccess(ref: string, digest: string, auth?: RegistryAuth): Promise<void>;
}

/** outside the catalogue: converted at one boundary, shared/images/registry-errors.ts classifyRegistryError (berthd and the CLI), into IMAGE_NOT_FOUND, IMAGE_ACCESS_DENIED, REGISTRY_UNAVAILABLE or PULL_FAILED */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  /** the registry wants credentials (none given) or refused the ones given */
  authRefused = false;
  /** with authRefused: no credentials were offered */
  anonymous = false;
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

function authRefused(message: string, auth: RegistryAuth | undefined): RegistryError {
  const e = new RegistryError(message);
  e.authRefused = true;
  e.anonymous = !auth?.password && !auth?.identityToken;
  return e;
}

function basic(auth: RegistryAuth): string {
  return 'Basic ' + Buffer.from(`${auth.username ?? ''}:${auth.password ?? ''}`).toString('base64');
}

export class RegistryClient implements DigestResolver, ImageSizer {
  constructor(private readonly timeoutMs = 15_000) {}

  async resolveDigest(text: string, auth?: RegistryAuth): Promise<string> {
    const ref = parseImageReference(text);
    const { host, url } = this.manifestUrl(ref.domain, ref.path, ref.tag ?? 'latest');
    const res = await this.authorized('HEAD', url, host, auth);
    const digest = res.headers.get('docker-content-digest');
    if (digest && /^sha256:[a-f0-9]{64}$/.test(digest)) return digest;
    const body = await this.authorized('GET', url, host, auth);
    return 'sha256:' + createHash('sha256').update(Buffer.from(await body.arrayBuffer())).digest('hex');
  }

  async checkAccess(text: string, digest: string, auth?: RegistryAuth): Promise<void> {
    const ref = parseImageReference(text);
    const { host, url } = this.manifestUrl(ref.domain, ref.path, digest);
    await this.authorized('HEAD', url, host, auth);
  }

  /**
   * The bytes a pull of REF (pinned to a digest, or a tag) downloads: its config and layers
   * as the manifest lists them (compressed sizes), for this machine's platform when REF is an
   * index. Unpacked, an image is as big or bigger.
   */
  async imageBytes(text: string, auth?: RegistryAuth): Promise<number> {
    const ref = parseImageReference(text);
    const get = async (tagOrDigest: string): Promise<Manifest> => {
      const { host, url } = this.manifestUrl(ref.domain, ref.path, tagOrDigest);
      return (await (await this.authorized('GET', url, host, auth)).json()) as Manifest;
    };
    let m = await get(ref.digest ?? ref.tag ?? 'latest');
    if (m.manifests) {
      const arch = OCI_ARCH[process.arch] ?? process.arch;
      const pick = m.manifests.find((d) => d.platform?.os === 'linux' && d.platform.architecture === arch);
      if (!pick) throw new RegistryError(`image '${text}' has no manifest for linux/${arch}`);
      m = await get(pick.digest);
    }
    return (m.config?.size ?? 0) + (m.layers ?? []).reduce((sum, l) => sum + (l.size ?? 0), 0);
  }

  private manifestUrl(domain: string, path: string, tagOrDigest: string): { host: string; url: string } {
    const host = registryHost(domain) === DOCKER_HUB ? DOCKER_HUB_API : domain;
    const repo = host === DOCKER_HUB_API && !path.includes('/') ? `library/${path}` : path;
    return { host, url: `${isLoopback(host) ? 'http' : 'https'}://${host}/v2/${repo}/manifests/${tagOrDigest}` };
  }

  /** One request, answering a Basic or Bearer challenge once; throws unless the answer is 200. */
  private async authorized(method: string, url: string, host: string, auth?: RegistryAuth): Promise<Response> {
    let res = await this.request(method, url);
    if (res.status === 401) {
      const challenge = res.headers.get('www-authenticate') ?? '';
      if (/^basic/i.test(challenge)) {
        if (!auth?.password) throw authRefused(`registry ${host} needs credentials (HTTP 401)`, undefined);
        res = await this.request(method, url, basic(auth));
      } else {
        res = await this.request(method, url, `Bearer ${await this.token(challenge, url, host, auth)}`);
      }
    }
    const whose = auth ? `the credentials from ${auth.source}` : 'anonymous access';
    if (res.status === 401 || res.status === 403) throw authRefused(`registry ${host} refused ${whose} (HTTP ${res.status})`, auth);
    if (res.status === 404) throw new RegistryError('manifest unknown, HTTP 404');
    if (res.status >= 500) throw new RegistryError(`registry ${host} failed: HTTP ${res.status}; server gave HTTP response ${res.status}`);
    if (res.status !== 200) throw new RegistryError(`registry ${host} answered HTTP ${res.status} for ${url}`);
    return res;
  }

  private async request(method: string, url: string, authorization?: string): Promise<Response> {
    const headers: Record<string, string> = { Accept: ACCEPT };
    if (authorization) headers.Authorization = authorization;
    try {
      return await fetch(url, { method, headers, signal: AbortSignal.timeout(this.timeoutMs), redirect: 'follow' });
    } catch (err) {
      throw new RegistryError(describeFetchError(err, url), { cause: err });
    }
  }

  /** A bearer token from the challenge's realm: anonymous, with Basic credentials, or from an identity token. */
  private async token(challenge: string, url: string, host: string, auth?: RegistryAuth): Promise<string> {
    const params = new Map([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    const realm = params.get('realm');
    if (!/^bearer /i.test(challenge) || !realm) throw new RegistryError(`registry for ${url} asks for an authentication berth does not know (challenge '${challenge}')`);
    const q = new URLSearchParams();
    if (params.get('service')) q.set('service', params.get('service')!);
    if (params.get('scope')) q.set('scope', params.get('scope')!);
    let res: Response;
    if (auth?.identityToken) {
      q.set('grant_type', 'refresh_token');
      q.set('refresh_token', auth.identityToken);
      q.set('client_id', 'berth');
      res = await this.requestForm(realm, q);
    } else {
      res = await this.request('GET', `${realm}?${q.toString()}`, auth?.password ? basic(auth) : undefined);
    }
    const whose = auth ? `the credentials from ${auth.source}` : 'anonymous access';
    if (res.status === 401 || res.status === 403) throw authRefused(`token service of registry ${host} refused ${whose} (HTTP ${res.status})`, auth);
    if (!res.ok) throw new RegistryError(`token service ${realm} failed (HTTP ${res.status})`);
    const json = (await res.json()) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!token) throw new RegistryError(`token service ${realm} returned no token`);
    return token;
  }

  private async requestForm(url: string, form: URLSearchParams): Promise<Response> {
    try {
      return await fetch(url, { method: 'POST', body: form, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new RegistryError(describeFetchError(err, url), { cause: err });
    }
  }
}
