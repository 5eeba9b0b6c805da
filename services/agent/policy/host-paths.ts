// Host paths a container would mount: Binds entries ("SRC:DST[:OPTS]") and Mounts of a type
// other than volume or tmpfs. A path is judged by where it really leads: it is resolved on
// the host (realpath) so that a symlink or `..` placed under an allowed prefix cannot reach
// outside it, and the Docker socket, or a directory holding it, is never allowed, whatever
// the policy says. A path that does not exist is refused: dockerd would create it, as root.
//
// What a check cannot stop: a user who swaps a checked directory for a symlink between the
// check and dockerd's mount. The container's user and no-new-privileges bound what that buys.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { type BodyValue, BodyObject } from '../docker-request/body';

/** realpath on the host; undefined when the path does not exist */
export type ResolvePath = (p: string) => string | undefined;

/** The ResolvePath berthd gives the engine: the host's realpath. */
export function realHostPath(p: string): string | undefined {
  try {
    return realpathSync.native(p);
  } catch {
    return undefined; // ENOENT, ENOTDIR, ELOOP: nothing a container could mount
  }
}

export const DOCKER_SOCKETS: readonly string[] = ['/var/run/docker.sock', '/run/docker.sock'];

/** The host path a Binds entry or Mounts object mounts; undefined for volumes, tmpfs and anonymous volumes. */
export function hostSourceOf(value: BodyValue | undefined): string | undefined {
  if (typeof value === 'string') {
    const colon = value.indexOf(':');
    if (colon < 0) return undefined; // "/data": an anonymous volume at /data
    const source = value.slice(0, colon);
    return source.startsWith('/') ? source : undefined; // otherwise a named volume
  }
  if (value instanceof BodyObject) {
    const type = value.get('Type')?.value;
    const t = typeof type === 'string' ? type.toLowerCase() : '';
    if (t === 'volume' || t === 'tmpfs' || t === 'npipe' || t === 'cluster' || t === 'image') return undefined;
    const source = value.get('Source')?.value;
    return typeof source === 'string' && source !== '' ? source : undefined;
  }
  return undefined;
}

function under(p: string, prefix: string): boolean {
  return prefix === '/' || p === prefix || p.startsWith(`${prefix}/`);
}

export class HostPaths {
  /** protected path (as written and as resolved) → what to call it */
  private readonly protectedPaths = new Map<string, string>();

  constructor(private readonly resolve: ResolvePath | undefined, extraProtected: readonly string[] = []) {
    const resolved = (p: string): string | undefined => {
      try {
        return this.resolve?.(p);
      } catch {
        return undefined; // judged by name; a resolver that fails fails again, and denies, at the check
      }
    };
    const add = (p: string, label: string): void => {
      for (const form of [path.posix.normalize(p), resolved(p)]) if (form && !this.protectedPaths.has(form)) this.protectedPaths.set(form, label);
    };
    for (const p of DOCKER_SOCKETS) add(p, 'the Docker socket');
    for (const p of extraProtected) add(p, `the protected path ${p}`);
  }

  /** Why `source` is, or leads to, a protected path (the Docker socket) or a directory holding one; undefined when it does not. */
  protectedReason(source: string): string | undefined {
    if (!source.startsWith('/')) return undefined;
    const lexical = path.posix.normalize(source).replace(/(.)\/$/, '$1');
    const real = this.resolve?.(source);
    return this.guarded(lexical, `the host path ${source}`) ?? (real === undefined || real === lexical ? undefined : this.guarded(real, `the host path ${source} (resolving to ${real})`));
  }

  /** Why `source` must not be mounted under `prefixes`, or undefined when it may. */
  check(source: string, prefixes: readonly string[]): string | undefined {
    if (!source.startsWith('/')) return `the host path ${source} is not absolute`;
    if (source.split('/').some((s) => s === '..' || s === '.')) return `the host path ${source} contains '.' or '..'`;
    const lexical = path.posix.normalize(source).replace(/(.)\/$/, '$1');
    // before resolving: the socket is refused by name even where it does not exist yet
    const byName = this.guarded(lexical, `the host path ${source}`);
    if (byName) return byName;
    let real = lexical;
    if (this.resolve) {
      const r = this.resolve(lexical);
      if (r === undefined) return `the host path ${source} does not exist on this node (create it first: berth does not let dockerd create host directories as root)`;
      real = r;
    }
    const subject = real === lexical ? `the host path ${source}` : `the host path ${source} (resolving to ${real})`;
    const resolved = this.guarded(real, subject);
    if (resolved) return resolved;
    const realPrefixes = prefixes.map((p) => this.resolve?.(p) ?? path.posix.normalize(p).replace(/(.)\/$/, '$1'));
    if (realPrefixes.some((p) => under(real, p))) return undefined;
    if (prefixes.length === 0) return `${subject} is not allowed: the job may not mount host paths`;
    return `${subject} is not under ${prefixes.join(', ')}`;
  }

  private guarded(p: string, subject: string): string | undefined {
    for (const [prot, label] of this.protectedPaths) {
      if (under(prot, p)) return `${subject} ${p === prot ? 'is' : 'holds'} ${label}, which no container may mount`;
    }
    return undefined;
  }
}
