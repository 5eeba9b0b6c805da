// JobRecord → berth.v1.Job, and errors → gRPC status, in one place.
import * as grpc from '@grpc/grpc-js';
import { BerthError } from '../../shared/errors';
import { FAULT_METADATA_KEY, faultOf } from '../../shared/fault-class';
import type { Job } from '../../shared/gen/berth/v1/Job';
import type { JobRecord } from '../jobs/job-record';

export function toProtoJob(j: JobRecord, docker?: { host: string; certPath: string }): Job {
  return {
    dockerHost: docker?.host ?? '',
    dockerCertPath: docker?.certPath ?? '',
    jobId: j.jobId,
    node: j.node,
    uid: j.uid,
    gid: j.gid,
    user: j.user,
    image: j.imageRef,
    imageDigest: j.imageDigest,
    containerId: j.containerId,
    containerName: j.containerName,
    state: `JOB_STATE_${j.state}`,
    startTime: j.startTime,
    endTime: j.endTime,
    error: j.error,
    workDir: j.workDir,
    userContainers: j.userContainers,
    steps: j.steps.map((s) => ({
      stepId: s.stepId,
      taskId: s.taskId,
      argv: s.argv,
      state: `STEP_STATE_${s.state}`,
      exitCode: s.exitCode,
      signal: s.signal,
      startTime: s.startTime,
      endTime: s.endTime,
    })),
  };
}

export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  if (err instanceof BerthError) {
    const md = new grpc.Metadata();
    md.set('x-berth-error-code', err.code);
    // whose fault it is (shared/fault-class.ts): the hooks fail the job or drain the node by it
    md.set(FAULT_METADATA_KEY, err.fault ?? faultOf(err.code));
    return { code: err.grpcStatus, details: err.message, metadata: md };
  }
  return { code: grpc.status.INTERNAL, details: `internal error in berthd: ${err instanceof Error ? err.message : String(err)}` };
}
