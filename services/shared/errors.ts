// One catalogue of berth's coded errors. Every message says what was wrong and what to do;
// the gRPC status for each code is fixed here so that the server maps errors in one place.
import { status } from './grpc-status';

export const ERROR_STATUS = {
  INVALID_REQUEST: status.INVALID_ARGUMENT,
  /** a --container-* value of the user's that berthd refuses (checked at submit too) */
  OPTIONS_INVALID: status.INVALID_ARGUMENT,
  INVALID_IMAGE_REFERENCE: status.INVALID_ARGUMENT,
  ROOT_JOB_REFUSED: status.PERMISSION_DENIED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  POLICY_DENIED: status.PERMISSION_DENIED,
  MOUNT_REFUSED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  IMAGE_NOT_FOUND: status.NOT_FOUND,
  IMAGE_ACCESS_DENIED: status.PERMISSION_DENIED,
  CREDENTIALS_UNSAFE: status.FAILED_PRECONDITION,
  /** the user's own ~/.docker/config.json cannot be read as a docker login file */
  CREDENTIALS_INVALID: status.FAILED_PRECONDITION,
  /** the site's registryCredentialsFile is unsafe or malformed */
  SITE_CREDENTIALS_INVALID: status.FAILED_PRECONDITION,
  REGISTRY_UNAVAILABLE: status.UNAVAILABLE,
  PULL_FAILED: status.UNAVAILABLE,
  JOB_NOT_FOUND: status.NOT_FOUND,
  NO_CONTAINER: status.FAILED_PRECONDITION,
  /** a container name of the job's is taken by another image, user or container */
  NAME_CLASH: status.ALREADY_EXISTS,
  /** a host path the job's user asked for (a mount, home, the working directory) cannot be opened as that user */
  PATH_UNREACHABLE: status.PERMISSION_DENIED,
  /** the job's container could not be made on this node: its steps fail with the reason berthd recorded */
  JOB_FAULTED: status.FAILED_PRECONDITION,
  JOB_NOT_RUNNING: status.FAILED_PRECONDITION,
  USER_UNKNOWN: status.FAILED_PRECONDITION,
  ENGINE_FAILED: status.INTERNAL,
  /** dockerd cannot be reached on its socket */
  ENGINE_UNAVAILABLE: status.UNAVAILABLE,
  /** no space left for an image, a container or berth's files on this node */
  DISK_FULL: status.RESOURCE_EXHAUSTED,
  /** something every job needs from this node is missing or wrong (a site mount, a device, a file) */
  NODE_CONFIG: status.FAILED_PRECONDITION,
  AGENT_UNAVAILABLE: status.UNAVAILABLE,
  NODE_DRAINED: status.FAILED_PRECONDITION,
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
