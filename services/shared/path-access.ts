// Whether a user could reach a host path themselves: every directory on the way searchable,
// the path itself readable, by the mode bits for their uid and groups. dockerd mounts as
// root, so a user's --container-mounts source is checked this way first: a readable file
// under a directory the user cannot enter must stay out of reach. The check runs on the
// real path (symbolic links resolved), which is also what is mounted.
// berthd answers the submit check for a user (SubmitCheck) as root: there the path is resolved
// as that user's own lookup would resolve it (realpathAs), so that root's reach neither answers
// differently from `berth submit-check` run as the user nor tells the user where a link they
// could not follow leads.
import { lstatSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { OptionError } from './container-options';

export interface Who {
  uid: number;
  gids: readonly number[];
}

function allows(st: Stats, who: Who, bit: 4 | 1): boolean {
  if (who.uid === 0) return true;
  if (st.uid === who.uid) return (st.mode & (bit << 6)) !== 0;
  if (who.gids.includes(st.gid)) return (st.mode & (bit << 3)) !== 0;
  return (st.mode & bit) !== 0;
}

function lookupError(code: 'EACCES' | 'ENOENT' | 'ENOTDIR' | 'ELOOP', text: string, p: string): NodeJS.ErrnoException {
  // the words and code realpathSync.native's error has
  const e: NodeJS.ErrnoException = new Error(`${code}: ${text}, realpath '${p}'`);
  e.code = code;
  e.syscall = 'realpath';
  e.path = p;
  return e;
}

const MAX_LINKS = 40; // the kernel's limit on symbolic links in one lookup

/**
 * outside the catalogue: converted at its one boundary, agent/submit/submit-checker.ts, into
 * NOT_SERVED_ON_NODE. A path the process itself may not look at (root on a root-squashed NFS
 * home, say): what the user could reach there cannot be told from here. realpathAs throws it;
 * whoever answers for the user must then let the user's own process answer (berth-hook runs
 * `berth submit-check`).
 */
export class CannotLookAs extends Error {
  override readonly name = 'CannotLookAs';
  constructor(readonly path: string, cause: unknown) {
    super(`${path} cannot be looked at by uid ${process.getuid?.() ?? '?'} itself (${(cause as Error).message})`, { cause });
  }
}

/** FN's result; an EACCES or EPERM of the process's own (not of who's) as CannotLookAs */
export function asProcess<T>(p: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new CannotLookAs(p, err);
    throw err;
  }
}

/**
 * realpath(3) of the absolute path `p` as `who`'s own lookup would resolve it: every directory
 * searched must let `who` search it (mode bits, as allows() reads them), links are followed
 * as the kernel follows them. Throws as realpathSync.native does (EACCES, ENOENT, ENOTDIR, ELOOP).
 * A caller that is `who` (or root for root) gets realpathSync.native itself.
 */
export function realpathAs(p: string, who: Who): string {
  if (who.uid === (process.getuid?.() ?? -1)) return realpathSync.native(p);
  if (!p.startsWith('/')) throw new Error(`realpathAs: ${p} is not an absolute path`);
  const pending = p.split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    const dir = `/${done.join('/')}`;
    if (!allows(asProcess(dir, () => statSync(dir)), who, 1)) throw lookupError('EACCES', 'permission denied', p);
    if (part === '..') {
      done.pop();
      continue;
    }
    const next = path.join(dir, part);
    let st: Stats;
    try {
      st = asProcess(next, () => lstatSync(next));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw lookupError(code, code === 'ENOENT' ? 'no such file or directory' : 'not a directory', p);
      throw err;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw lookupError('ELOOP', 'too many symbolic links encountered', p);
      const target = asProcess(next, () => readlinkSync(next));
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    if (pending.length > 0 && !st.isDirectory()) throw lookupError('ENOTDIR', 'not a directory', p);
    done.push(part);
  }
  return `/${done.join('/')}`;
}

/**
 * The real path of `p` if `who` may read it (and enter every directory above it); else an
 * OptionError saying where it stops. `resolve` finds the real path: the process's own lookup
 * (the CLI as the user; berthd as root, which then judges each directory's mode), or
 * realpathAs for a user berthd answers for.
 */
export function reachablePath(p: string, who: Who, what = 'mount source', resolve: (p: string) => string = realpathSync.native): string {
  let real: string;
  try {
    real = resolve(p);
  } catch (err) {
    if (err instanceof CannotLookAs) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    // pyxis's words (its tests grep them): "source path does not exist", then the path
    if (code === 'ENOENT') throw new OptionError(`${what} does not exist: ${p}; create it first, or fix the path`);
    if (code === 'EACCES') throw new OptionError(`${what} ${p} cannot be reached by uid ${who.uid} (permission denied on the way)`);
    throw new OptionError(`${what} ${p} cannot be resolved: ${(err as Error).message}`);
  }
  const shown = real === p.replace(/\/+$/, '') ? p : `${p} (${real})`;
  const parts = real.split('/').filter(Boolean);
  let dir = '/';
  for (const part of parts.slice(0, -1)) {
    dir = path.join(dir, part);
    const st = statSync(dir);
    if (!allows(st, who, 1)) throw new OptionError(`${what} ${shown}: uid ${who.uid} may not enter ${dir} (mode ${(st.mode & 0o777).toString(8)}), so it may not mount what is below it`);
  }
  const st = statSync(real);
  if (!st.isDirectory() && !st.isFile()) throw new OptionError(`${what} ${shown} is neither a directory nor a regular file`);
  if (!allows(st, who, 4) || (st.isDirectory() && !allows(st, who, 1))) {
    throw new OptionError(`${what} ${shown} is not readable by uid ${who.uid} (mode ${(st.mode & 0o777).toString(8)}, owner ${st.uid})`);
  }
  return real;
}
