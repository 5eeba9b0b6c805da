// One catalogue of berth's coded errors. Every message says what was wrong and what to do;
// the gRPC status for each code is fixed here so that the server maps errors in one place.
import { status } from './grpc-status';

export const ERROR_STATUS = {
  /** a request malformed in itself: a field missing or not of its grammar (a job id, a time, a path); nothing about the node or the job's state */
  INVALID_REQUEST: status.INVALID_ARGUMENT,
  /** a --container-* value of the user's that berthd refuses (checked at submit too), or the job's --chdir not a normalized absolute path */
  OPTIONS_INVALID: status.INVALID_ARGUMENT,
  /** an image reference that does not parse (the message says which part) */
  INVALID_IMAGE_REFERENCE: status.INVALID_ARGUMENT,
  /** a container job as uid or gid 0, or a Docker client certificate for root */
  ROOT_JOB_REFUSED: status.PERMISSION_DENIED,
  /** the caller may not do this: another user's job, a root-only method from a user, a role the TCP client lacks */
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  /** the site policy refuses the container */
  POLICY_DENIED: status.PERMISSION_DENIED,
  /** a --container-mounts source the user cannot read or the site does not let jobs mount */
  MOUNT_REFUSED: status.PERMISSION_DENIED,
  /** a missing, stale, replayed or misbound munge credential */
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  /** the registry has no such repository, tag or digest */
  IMAGE_NOT_FOUND: status.NOT_FOUND,
  /** the image alone is bigger than this node's image budget (imageGc.budgetBytes): it can never run on this node */
  IMAGE_TOO_BIG: status.FAILED_PRECONDITION,
  /** the registry refuses the user, or a private cached copy is not confirmed for them */
  IMAGE_ACCESS_DENIED: status.PERMISSION_DENIED,
  /** the user's ~/.docker/config.json is readable by others, a symlink or not theirs */
  CREDENTIALS_UNSAFE: status.FAILED_PRECONDITION,
  /** the user's own ~/.docker/config.json cannot be read as a docker login file */
  CREDENTIALS_INVALID: status.FAILED_PRECONDITION,
  /** the site's registryCredentialsFile is unsafe or malformed */
  SITE_CREDENTIALS_INVALID: status.FAILED_PRECONDITION,
  /** the registry cannot be reached */
  REGISTRY_UNAVAILABLE: status.UNAVAILABLE,
  /** the pull failed otherwise: the registry served the image wrongly, or the pull stalled or timed out */
  PULL_FAILED: status.UNAVAILABLE,
  /** no container job with that id on this node */
  JOB_NOT_FOUND: status.NOT_FOUND,
  /** a step joins a container the job does not have */
  NO_CONTAINER: status.FAILED_PRECONDITION,
  /** a container name of the job's is taken by another image, user or container */
  NAME_CLASH: status.ALREADY_EXISTS,
  /** a host path the job's user asked for (a mount, home, the working directory) cannot be opened as that user */
  PATH_UNREACHABLE: status.PERMISSION_DENIED,
  /** the job's container could not be made on this node: its steps fail with the reason berthd recorded */
  JOB_FAULTED: status.FAILED_PRECONDITION,
  /** the job's container is not running, or the job ended (scancel, its time limit) before berth could act for it */
  JOB_NOT_RUNNING: status.FAILED_PRECONDITION,
  /** a step's directory exists neither in the job's container nor among its mounts */
  WORKDIR_MISSING: status.FAILED_PRECONDITION,
  /** the job's user name cannot name a Docker client certificate (its CN); the user's other jobs fail alike, the node is fine */
  USER_NAME_UNSUPPORTED: status.FAILED_PRECONDITION,
  /** the job id already has a running container here for another uid: the old job's epilog did not run on this node */
  JOB_ID_IN_USE: status.ALREADY_EXISTS,
  /** this berthd does not serve what was asked (container steps): the node's hooks and berthd are set up differently */
  NOT_SERVED_ON_NODE: status.UNIMPLEMENTED,
  /** the node's name service does not know the uid, or disagrees with Slurm */
  USER_UNKNOWN: status.FAILED_PRECONDITION,
  /** dockerd refused to create, start or exec, or failed to store a pulled image, for a reason of its own */
  ENGINE_FAILED: status.INTERNAL,
  /** dockerd cannot be reached on its socket */
  ENGINE_UNAVAILABLE: status.UNAVAILABLE,
  /** no space left for an image, a container or berth's files on this node */
  DISK_FULL: status.RESOURCE_EXHAUSTED,
  /** something every job needs from this node is missing or wrong (a site mount, a device, a file) */
  NODE_CONFIG: status.FAILED_PRECONDITION,
  /** berthd is starting, recovering or stopping */
  AGENT_UNAVAILABLE: status.UNAVAILABLE,
  /** the node is drained for container jobs (berth drain, or berthd's node check) */
  NODE_DRAINED: status.FAILED_PRECONDITION,
  /** a call that ran out of time (the hooks use it for berthd not answering within their deadline) */
  TIMEOUT: status.DEADLINE_EXCEEDED,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class BerthError extends Error {
  override readonly name = 'BerthError';
  /** whose fault it is when not the code's (shared/fault-class.ts): set where berthd knows better */
  readonly fault?: 'job' | 'node';
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown; fault?: 'job' | 'node' }) {
    super(message, options);
    if (options?.fault) this.fault = options.fault;
  }
  get grpcStatus(): number {
    return ERROR_STATUS[this.code];
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
