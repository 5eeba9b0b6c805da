// Registry credentials in Docker's config.json format ({"auths": {"HOST": {"auth": base64
// "user:password"}}}), the file `docker login` writes. berth reads two of them: the site's
// (berthd's registryCredentialsFile, root's own) and a job user's ~/.docker/config.json, used
// only for that user's jobs. A credentials file is refused unless it is a regular file, owned
// by whoever it speaks for, and readable by nobody else — the rule ssh applies to keys.
import { constants, promises as fs } from 'node:fs';
import { BerthError } from '../errors';
import { registryHost } from './registry-host';

export interface RegistryAuth {
  username?: string;
  password?: string;
  /** an OAuth refresh token some registries hand out instead of a password */
  identityToken?: string;
  /** registry host the entry is for (docker.io for Docker Hub) */
  registry: string;
  /** the file it came from, for messages and logs (never the secret) */
  source: string;
}

/** Finds the credentials for one registry host; undefined means anonymous. */
export type CredentialLookup = (registry: string) => Promise<RegistryAuth | undefined>;

const MAX_CONFIG_BYTES = 1 << 20;
/** The key under which a registry's credentials are filed: host[:port], Docker Hub as docker.io. */
export const registryKey = registryHost;

export interface DockerConfigCredentials {
  auths: Map<string, Omit<RegistryAuth, 'registry' | 'source'>>;
  /** credential helpers named by the file (credsStore/credHelpers); berth runs none of them */
  helpers: string[];
}

function decodeAuth(value: string, where: string): { username: string; password: string } {
  const text = Buffer.from(value, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) throw new BerthError('CREDENTIALS_INVALID', `${where}: "auth" is not base64 of USER:PASSWORD; run docker login again`);
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

export function parseDockerConfig(text: string, source: string): DockerConfigCredentials {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // no parser detail: it would quote the file, secrets included
    throw new BerthError('CREDENTIALS_INVALID', `${source} is not valid JSON; fix it or run docker login again`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new BerthError('CREDENTIALS_INVALID', `${source} must hold one JSON object`);
  const doc = json as { auths?: unknown; credsStore?: unknown; credHelpers?: unknown };
  const auths = new Map<string, Omit<RegistryAuth, 'registry' | 'source'>>();
  const entries = doc.auths && typeof doc.auths === 'object' ? Object.entries(doc.auths as Record<string, unknown>) : [];
  for (const [host, raw] of entries) {
    if (!raw || typeof raw !== 'object') continue;
    const e = raw as { auth?: unknown; username?: unknown; password?: unknown; identitytoken?: unknown };
    const where = `${source}: auths["${host}"]`;
    const entry: Omit<RegistryAuth, 'registry' | 'source'> = {};
    if (typeof e.auth === 'string' && e.auth !== '') Object.assign(entry, decodeAuth(e.auth, where));
    if (typeof e.username === 'string' && e.username !== '') entry.username = e.username;
    if (typeof e.password === 'string' && e.password !== '') entry.password = e.password;
    if (typeof e.identitytoken === 'string' && e.identitytoken !== '') entry.identityToken = e.identitytoken;
    if (entry.password !== undefined || entry.identityToken !== undefined) auths.set(registryKey(host), entry);
  }
  const helpers: string[] = [];
  if (typeof doc.credsStore === 'string' && doc.credsStore) helpers.push(doc.credsStore);
  if (doc.credHelpers && typeof doc.credHelpers === 'object') {
    for (const h of Object.values(doc.credHelpers as Record<string, unknown>)) if (typeof h === 'string' && !helpers.includes(h)) helpers.push(h);
  }
  return { auths, helpers };
}

export interface PrivateFile {
  text: string;
  /** set when the file is the owner's own but others may read it: its text is known, not usable */
  unsafe?: BerthError;
}

/**
 * Reads a credentials file that must belong to `ownerUid` and be readable by nobody else.
 * Opened without following a final symlink and checked on the open descriptor, so a user
 * cannot point root at someone else's file. Undefined when the file does not exist.
 */
export async function readPrivateFile(file: string, ownerUid: number): Promise<PrivateFile | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw unsafe(file, 'is a symbolic link', 'replace it with the file itself (docker login writes one)');
    if (code === 'EACCES') throw unsafe(file, 'cannot be read by root (a root-squashed home directory?)', 'ask the site admins to use site credentials for this registry');
    throw unsafe(file, `cannot be opened (${code ?? (err as Error).message})`, 'check the file');
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw unsafe(file, 'is not a regular file', 'replace it with the file docker login writes');
    if (st.uid !== ownerUid) throw unsafe(file, `is owned by uid ${st.uid}, not by uid ${ownerUid}`, 'it must belong to the user whose credentials it holds');
    if (st.size > MAX_CONFIG_BYTES) throw unsafe(file, `is larger than ${MAX_CONFIG_BYTES} bytes`, 'keep only registry logins in it');
    const text = await handle.readFile('utf8');
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      return { text, unsafe: unsafe(file, `can be read or written by other users (mode ${mode})`, `run: chmod 600 ${file}`) };
    }
    return { text };
  } finally {
    await handle.close();
  }
}

function unsafe(file: string, what: string, todo: string): BerthError {
  return new BerthError('CREDENTIALS_UNSAFE', `registry credentials ${file} ${what}; berth will not use them: ${todo}`);
}

/**
 * Credentials from one docker config file, read when first asked for a registry and again
 * whenever the file changes (a fresh docker login counts for the next job). A file others
 * can read is an error only for the registries it has entries for; credential helpers
 * (credsStore, credHelpers) are not run.
 */
export function fileCredentials(file: string, ownerUid: number, opts: { site?: boolean } = {}): CredentialLookup {
  const lookup = userFileCredentials(file, ownerUid);
  if (!opts.site) return lookup;
  // the site's file is the node's, not a job's: its problems are the node's (shared/fault-class.ts)
  return (registry) => lookup(registry).catch((err: unknown) => {
    if (err instanceof BerthError && (err.code === 'CREDENTIALS_UNSAFE' || err.code === 'CREDENTIALS_INVALID')) {
      throw new BerthError('SITE_CREDENTIALS_INVALID', `the site's ${err.message}`, { cause: err });
    }
    throw err;
  });
}

function userFileCredentials(file: string, ownerUid: number): CredentialLookup {
  type Loaded = { creds: DockerConfigCredentials; unsafe?: BerthError } | undefined;
  let cached: { stamp: string; result: Promise<Loaded> } | undefined;
  const load = async (): Promise<Loaded> => {
    const got = await readPrivateFile(file, ownerUid);
    return got && { creds: parseDockerConfig(got.text, file), unsafe: got.unsafe };
  };
  const stampOf = (): Promise<string> => fs.lstat(file).then(
    (st) => `${st.ino}:${st.mtimeMs}:${st.ctimeMs}:${st.size}`,
    (err: NodeJS.ErrnoException) => `absent:${err.code ?? ''}`,
  );
  return async (registry) => {
    const stamp = await stampOf();
    if (!cached || cached.stamp !== stamp) cached = { stamp, result: load() };
    let got: Loaded;
    try {
      got = await cached.result;
    } catch (err) {
      cached = undefined;
      throw err;
    }
    const entry = got?.creds.auths.get(registryKey(registry));
    if (!entry) return undefined;
    if (got?.unsafe) throw got.unsafe;
    return { ...entry, registry: registryKey(registry), source: file };
  };
}

/** The first lookup that has credentials for the registry wins. */
export function firstOf(...lookups: CredentialLookup[]): CredentialLookup {
  return async (registry) => {
    for (const lookup of lookups) {
      const auth = await lookup(registry);
      if (auth) return auth;
    }
    return undefined;
  };
}

export const anonymous: CredentialLookup = async () => undefined;
