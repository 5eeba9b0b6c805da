// berth.v1 messages ↔ berthd's own types, and errors → gRPC status, in one place: the method
// table (method-table.ts) speaks domain types on one side and proto messages on the other
// only through these.
import * as grpc from '@grpc/grpc-js';
import { BerthError } from '../../shared/errors';
import { FAULT_METADATA_KEY, faultOf } from '../../shared/fault-class';
import type { ContainerOptions, NameFlag, Propagation, UnshareNamespace } from '../../shared/container-options';
import type { ContainerOptions__Output } from '../../shared/gen/berth/v1/ContainerOptions';
import type { ExecStart__Output } from '../../shared/gen/berth/v1/ExecStart';
import type { Job } from '../../shared/gen/berth/v1/Job';
import type { DrainState } from '../admin/drain-store';
import type { ManagedContainerView } from '../admin/managed-containers';
import type { NodeStatus } from '../admin/node-status';
import type { ImageView } from '../housekeeping/image-cache';
import type { ImageGcResult } from '../housekeeping/image-gc';
import type { PullProgress } from '../docker/pull-stream';
import type { PullProgress as ProtoPullProgress } from '../../shared/gen/berth/v1/PullProgress';
import type { JobRecord } from '../jobs/job-record';
import type { StepRequest } from '../steps/step-runner';

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

export function toProtoDrain(s: DrainState) {
  return { drained: s.drained, reason: s.reason, since: s.since, by: s.by };
}

export function toProtoStatus(s: NodeStatus) {
  return { ...s, state: `AGENT_STATE_${s.state}` as const, drain: toProtoDrain(s.drain) };
}

export function toProtoImage(i: ImageView) {
  return {
    id: i.id, repoDigests: i.repoDigests, repoTags: i.repoTags, sizeBytes: i.sizeBytes, created: new Date(i.created * 1000).toISOString(),
    lastUsed: i.lastUsed ? new Date(i.lastUsed).toISOString() : '', inUse: i.inUse,
  };
}

export function toProtoPruned(res: ImageGcResult) {
  return {
    removed: res.removed.map((x) => ({ id: x.id, repoDigests: [x.ref], sizeBytes: x.sizeBytes })),
    freedBytes: res.freedBytes,
    diskUsagePercent: res.usagePercent,
    skipped: res.skipped ?? '',
  };
}

export function toProtoPullProgress(p: PullProgress): ProtoPullProgress {
  return { ...p, layers: p.layers.map((l) => ({ ...l, state: `LAYER_STATE_${l.state.toUpperCase() as Uppercase<typeof l.state>}` as const })) };
}

export function toProtoContainer(c: ManagedContainerView) {
  return { ...c, kind: `CONTAINER_KIND_${c.kind}` as const };
}

function fromToggle(t: string): boolean | undefined {
  return t === 'TOGGLE_ON' ? true : t === 'TOGGLE_OFF' ? false : undefined;
}

/** the --container-* options of a JobPrologue or StepPrologue request */
export function fromProtoOptions(o: ContainerOptions__Output | null): ContainerOptions {
  return {
    mounts: (o?.mounts ?? []).map((m) => ({
      source: m.source, target: m.target, readOnly: m.readOnly,
      ...(m.propagation ? { propagation: m.propagation as Propagation } : {}),
      ...(m.tmpfsOptions?.length ? { tmpfsOptions: [...m.tmpfsOptions] } : {}),
    })),
    workdir: o?.workdir ?? '', envNames: o?.envNames ?? [], name: o?.name ?? '',
    ...(o?.nameFlag ? { nameFlag: o.nameFlag as NameFlag } : {}),
    mountHome: fromToggle(o?.mountHome ?? ''), readOnly: fromToggle(o?.readOnly ?? ''),
    // checked where the request is (jobs/prologue-request.ts, steps/step-containers.ts)
    ...(o?.unshare?.length ? { unshare: o.unshare as UnshareNamespace[] } : {}),
  };
}

/** ExecStep's `start` message as the step it asks for */
export function fromProtoExecStart(s: ExecStart__Output): StepRequest {
  return {
    stepId: s.stepId, taskId: s.taskId, argv: s.argv, cwd: s.cwd, env: s.env, tty: s.tty,
    ...(s.slurmStep ? { slurmStep: s.slurmStep } : {}),
    ...(s.slurmTask ? { slurmTask: s.slurmTask } : {}),
    ...(s.tty && s.rows > 0 && s.cols > 0 ? { size: { rows: s.rows, cols: s.cols } } : {}),
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
