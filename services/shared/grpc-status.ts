// The gRPC status codes berth's error catalogue maps to (the numbers are fixed by the gRPC
// protocol). Spelled here so that shared/errors.ts, and with it the job id parser that the
// CLI's hook fast path loads (cli/main.ts → slurm-env.ts → ids.ts), does not load
// @grpc/grpc-js: slurmd runs the hooks for every job, and a job without a container must
// return at once. test/unit/ids.test.ts checks them against @grpc/grpc-js.
export const status = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
