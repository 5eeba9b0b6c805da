// One catalogue of berth's coded errors. Every message says what was wrong and what to do;
// the gRPC status for each code is fixed here so that the server maps errors in one place.
import { status } from '@grpc/grpc-js';

export const ERROR_STATUS = {
  INVALID_REQUEST: status.INVALID_ARGUMENT,
  INVALID_IMAGE_REFERENCE: status.INVALID_ARGUMENT,
  ROOT_JOB_REFUSED: status.PERMISSION_DENIED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  POLICY_DENIED: status.PERMISSION_DENIED,
  MOUNT_REFUSED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  IMAGE_NOT_FOUND: status.NOT_FOUND,
  IMAGE_ACCESS_DENIED: status.PERMISSION_DENIED,
  CREDENTIALS_UNSAFE: status.FAILED_PRECONDITION,
  REGISTRY_UNAVAILABLE: status.UNAVAILABLE,
  PULL_FAILED: status.UNAVAILABLE,
  JOB_NOT_FOUND: status.NOT_FOUND,
  NO_CONTAINER: status.FAILED_PRECONDITION,
  JOB_NOT_RUNNING: status.FAILED_PRECONDITION,
  USER_UNKNOWN: status.FAILED_PRECONDITION,
  ENGINE_FAILED: status.INTERNAL,
  AGENT_UNAVAILABLE: status.UNAVAILABLE,
  NODE_DRAINED: status.FAILED_PRECONDITION,
  TIMEOUT: status.DEADLINE_EXCEEDED,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class BerthError extends Error {
  override readonly name = 'BerthError';
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
  get grpcStatus(): number {
    return ERROR_STATUS[this.code];
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
