// Whether a user could reach a host path themselves: every directory on the way searchable,
// the path itself readable, by the mode bits for their uid and groups. dockerd mounts as
// root, so a user's --container-mounts source is checked this way first: a readable file
// under a directory the user cannot enter must stay out of reach. The check runs on the
// real path (symbolic links resolved), which is also what is mounted.
import { realpathSync, statSync, type Stats } from 'node:fs';
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

/** The real path of `p` if `who` may read it (and enter every directory above it); else an OptionError saying where it stops. */
export function reachablePath(p: string, who: Who, what = 'mount source'): string {
  let real: string;
  try {
    real = realpathSync.native(p);
  } catch (err) {
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
