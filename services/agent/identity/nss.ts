// The job user's identity as the host's NSS reports it (getent, id), so that LDAP/SSSD
// users and their supplementary groups are seen exactly as Slurm sees them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BerthError } from '../../shared/errors';
import type { GroupEntry, PasswdEntry } from '../containers/passwd';

const run = promisify(execFile);

export interface UserIdentity extends PasswdEntry {
  /** primary group first, then supplementary groups */
  groups: GroupEntry[];
}

export interface IdentityResolver {
  lookup(uid: number, expectedName?: string): Promise<UserIdentity>;
}

async function getent(db: string, ...keys: string[]): Promise<string[]> {
  try {
    const { stdout } = await run('getent', [db, ...keys], { timeout: 10_000 });
    return stdout.split('\n').filter(Boolean);
  } catch (err) {
    // exit 2: one or more keys not found; the lines found are still on stdout
    const out = (err as { stdout?: string }).stdout;
    if (typeof out === 'string') return out.split('\n').filter(Boolean);
    throw err;
  }
}

/**
 * Remembers look-ups for a short while: every step of a job needs the user's name and home,
 * and three NSS processes per step would cost more than the step's exec itself.
 */
export class CachingIdentityResolver implements IdentityResolver {
  private readonly cache = new Map<number, { at: number; value: Promise<UserIdentity> }>();

  constructor(private readonly inner: IdentityResolver, private readonly ttlMs = 60_000, private readonly now = () => Date.now()) {}

  async lookup(uid: number, expectedName?: string): Promise<UserIdentity> {
    const hit = this.cache.get(uid);
    let value: Promise<UserIdentity>;
    if (hit && this.now() - hit.at < this.ttlMs) {
      value = hit.value;
    } else {
      value = this.inner.lookup(uid);
      this.cache.set(uid, { at: this.now(), value });
      value.catch(() => this.cache.delete(uid));
    }
    const id = await value;
    if (expectedName && expectedName !== id.name) {
      throw new BerthError('USER_UNKNOWN', `uid ${uid} is '${id.name}' on this node but Slurm says the job's user is '${expectedName}'; the node's name service disagrees with Slurm's`);
    }
    return id;
  }
}

export class NssIdentityResolver implements IdentityResolver {
  async lookup(uid: number, expectedName?: string): Promise<UserIdentity> {
    const [line] = await getent('passwd', String(uid));
    if (!line) throw new BerthError('USER_UNKNOWN', `uid ${uid} is not known to this node's name service (getent passwd ${uid}); check NSS/LDAP on the node`);
    const [name = '', , , gidText = '', gecos = '', home = '/', shell = '/bin/sh'] = line.split(':');
    if (expectedName && expectedName !== name) {
      throw new BerthError('USER_UNKNOWN', `uid ${uid} is '${name}' on this node but Slurm says the job's user is '${expectedName}'; the node's name service disagrees with Slurm's`);
    }
    const gid = Number(gidText);
    let gids: number[];
    try {
      const { stdout } = await run('id', ['-G', name], { timeout: 10_000 });
      gids = stdout.trim().split(/\s+/).map(Number).filter(Number.isInteger);
    } catch {
      gids = [gid];
    }
    const ordered = [gid, ...gids.filter((g) => g !== gid)];
    const groupLines = await getent('group', ...ordered.map(String));
    const names = new Map<number, string>();
    for (const l of groupLines) {
      const [gname = '', , g = ''] = l.split(':');
      names.set(Number(g), gname);
    }
    const groups = ordered.map((g) => ({ gid: g, name: names.get(g) ?? `g${g}` }));
    return { name, uid, gid, gecos, home, shell, groups };
  }
}
