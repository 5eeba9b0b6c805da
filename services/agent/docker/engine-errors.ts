// What a failed engine call means for the job, in berth's codes (shared/fault-class.ts says
// whose fault each is): dockerd gone, a full disk, berth-runc refusing a path as the job's user,
// a name taken, or dockerd failing on its own. A registry's errors are classified elsewhere
// (shared/images/registry-errors.ts); this runs first, so that a dockerd that cannot be reached
// is never taken for a registry that cannot.
import { BerthError } from '../../shared/errors';
import { engineMessage } from './engine';

const SOCKET_ERRNOS = new Set(['ECONNREFUSED', 'ENOENT', 'EPIPE', 'ECONNRESET', 'EACCES']);

/** dockerd's socket cannot be reached (dockerode passes the connect error through) */
export function isEngineUnreachable(err: unknown): boolean {
  const e = err as { code?: unknown; syscall?: unknown; address?: unknown } | null;
  if (typeof e?.code === 'string' && SOCKET_ERRNOS.has(e.code) && (e.syscall === 'connect' || typeof e.address === 'string')) return true;
  return /\bconnect (ECONNREFUSED|ENOENT) \S*docker\S*\.sock\b|Cannot connect to the Docker daemon/.test(engineMessage(err));
}

/** no space left: an errno of berthd's own, or dockerd's message (a pull's layer, a container's files) */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || /no space left on device|disk quota exceeded/i.test(engineMessage(err));
}

/** a pull that failed in dockerd's own storage, not at the registry */
export function isEngineStorageFailure(err: unknown): boolean {
  return /failed to register layer|input\/output error|read-only file system|error creating overlay mount|structure needs cleaning/i.test(engineMessage(err));
}

/** the host path berth-runc refused to open as the job's user, from its message */
export function gateRefusedPath(err: unknown): string | undefined {
  return /the host path (\S+) cannot be opened by uid \d+/.exec(engineMessage(err))?.[1];
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}

/**
 * A failed create or start of a job or step container, in berth's words. `userPaths` are the
 * host paths the job's user chose or owns (--container-mounts sources, home, the working
 * directory): berth-runc refusing one of those is the job's fault, any other the node's.
 */
export function containerFailure(jobId: string, image: string, err: unknown, userPaths: readonly string[]): BerthError {
  if (err instanceof BerthError) return err;
  const msg = firstLine(engineMessage(err));
  if (isEngineUnreachable(err)) {
    return new BerthError('ENGINE_UNAVAILABLE', `job ${jobId}: dockerd on this node cannot be reached (${msg}); the site admins must start it`, { cause: err });
  }
  if (isDiskFull(err)) {
    return new BerthError('DISK_FULL', `job ${jobId}: this node has no space left for the container from ${image} (${msg}); the site admins must free space on dockerd's disk`, { cause: err });
  }
  const refused = gateRefusedPath(err);
  if (refused) {
    const own = userPaths.some((p) => p && (refused === p || refused.startsWith(p.endsWith('/') ? p : `${p}/`)));
    const why = /cannot be opened by uid (\d+) \(([^)]*)\)/.exec(msg);
    const who = why ? `uid ${why[1]} (${why[2]})` : "the job's user";
    return own
      ? new BerthError('PATH_UNREACHABLE', `job ${jobId}: the host path ${refused} cannot be opened by ${who}, and a container may mount only what its user can open; make it readable for you, or leave it out of --container-mounts`, { cause: err })
      : new BerthError('NODE_CONFIG', `job ${jobId}: the host path ${refused}, which this node mounts into every job (berthd's mounts), cannot be opened by ${who}; the site admins must fix its permissions or the node's mounts`, { cause: err });
  }
  // slave propagation needs a host mount that is shared or slave: a property of the user's source on this node
  const notShared = /path (\S+) is mounted on (\S+) but it is not a shared or slave mount/.exec(msg);
  if (notShared) {
    return new BerthError('MOUNT_REFUSED', `job ${jobId}: --container-mounts: ${notShared[1]} is on the host mount ${notShared[2]}, which is private on this node, so slave propagation (slave, rslave) cannot be had for it; leave the propagation out (rprivate)`, { cause: err });
  }
  // berth checks a tmpfs's options at submit; one this dockerd still refuses came from the user's --container-mounts
  if (/invalid tmpfs option/i.test(msg)) {
    return new BerthError('MOUNT_REFUSED', `job ${jobId}: --container-mounts: dockerd on this node refuses a tmpfs option (${msg}); leave the option out of tmpfs:DST:FLAGS`, { cause: err });
  }
  if (/Conflict\. The container name .* is already in use/.test(msg)) {
    return new BerthError('NAME_CLASH', `job ${jobId}: ${msg}; another container holds the name berth gives this one: run the step again, or use another --container-name`, { cause: err });
  }
  return new BerthError('ENGINE_FAILED', `job ${jobId}: Docker could not create or start the container from ${image}: ${msg}`, { cause: err });
}

/** Any other failure berthd meets for a job (an engine call without a context of its own, its own files). */
export function agentFailure(jobId: string, err: unknown): unknown {
  if (err instanceof BerthError) return err;
  const msg = firstLine(engineMessage(err));
  if (isEngineUnreachable(err)) return new BerthError('ENGINE_UNAVAILABLE', `job ${jobId}: dockerd on this node cannot be reached (${msg}); the site admins must start it`, { cause: err });
  if (isDiskFull(err)) return new BerthError('DISK_FULL', `job ${jobId}: this node has no space left (${msg}); the site admins must free space`, { cause: err });
  return err;
}
