// berth.v1.NodeAgentService handlers. One instance per socket: the trust level of the
// socket decides how callers are authenticated (auth/caller.ts).
import type * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import { BerthError } from '../../shared/errors';
import { parseAccountingFilter, queryAccounting } from '../accounting/accounting-query';
import type { ExecStepRequest__Output } from '../../shared/gen/berth/v1/ExecStepRequest';
import type { ExecStepResponse } from '../../shared/gen/berth/v1/ExecStepResponse';
import type { NodeAgentServiceHandlers } from '../../shared/gen/berth/v1/NodeAgentService';
import { type Caller, type CallerAuthenticator, callerName, requireRoot, type Trust } from '../auth/caller';
import type { DrainState, DrainStore } from '../admin/drain-store';
import type { ManagedContainerView } from '../admin/managed-containers';
import type { NodeStatus } from '../admin/node-status';
import type { IdentityResolver } from '../identity/nss';
import type { JobRecord } from '../jobs/job-record';
import type { JobFault } from '../jobs/job-faults';
import { faultOf } from '../../shared/fault-class';
import type { ContainerOptions } from '../../shared/container-options';
import type { ContainerOptions__Output } from '../../shared/gen/berth/v1/ContainerOptions';
import type { StepContainers } from '../steps/step-containers';
import type { JobService } from '../jobs/job-service';
import type { ImageCache, ImageView } from '../housekeeping/image-cache';
import type { ImageService } from '../images/image-service';
import type { Lifecycle } from '../lifecycle';
import type { Logger } from '../logger';
import type { HookMetrics } from '../metrics/agent-metrics';
import type { RunningStep, StepRunner } from '../steps/step-runner';
import { toProtoJob, toServiceError } from './proto-mapping';

export interface AgentServiceDeps {
  jobs: JobService;
  steps: StepRunner;
  auth: CallerAuthenticator;
  identities: IdentityResolver;
  node: string;
  stopGraceMs: number;
  lifecycle: Lifecycle;
  log: Logger;
  imageCache: ImageCache;
  images: ImageService;
  /** the accounting log QueryAccounting reads: the current file and `keep` rotated ones */
  accounting: { file: string; rotation: { keep: number } };
  metrics?: HookMetrics;
  /** Docker access of a job, when the site enables it */
  dockerOf?: (jobId: string) => { host: string; certPath: string };
  /** containers for natively launched steps (SPANK plugin) */
  stepContainers?: StepContainers;
  drain: DrainStore;
  status: () => Promise<NodeStatus>;
  containers: () => Promise<ManagedContainerView[]>;
}

function toProtoDrain(s: DrainState) {
  return { drained: s.drained, reason: s.reason, since: s.since, by: s.by };
}

function toProtoStatus(s: NodeStatus) {
  return { ...s, state: `AGENT_STATE_${s.state}` as const, drain: toProtoDrain(s.drain) };
}

function toProtoImage(i: ImageView) {
  return {
    id: i.id, repoDigests: i.repoDigests, repoTags: i.repoTags, sizeBytes: i.sizeBytes, created: new Date(i.created * 1000).toISOString(),
    lastUsed: i.lastUsed ? new Date(i.lastUsed).toISOString() : '', inUse: i.inUse,
  };
}

function ownJob(caller: Caller, job: JobRecord | undefined, jobId: string, node: string, fault?: JobFault): JobRecord {
  if (!job && fault && (caller.kind !== 'user' || caller.uid === fault.uid)) {
    // the job's prologue failed here for a reason of its own: say it, not that there is no container
    throw new BerthError('JOB_FAULTED', `job ${jobId} has no container on ${node}: it could not be made when the job started: ${fault.reason}`);
  }
  if (!job) throw new BerthError('JOB_NOT_FOUND', `job ${jobId} has no container on node ${node}: berth exec needs a job submitted with --container-image`);
  if (caller.kind === 'user' && caller.uid !== job.uid) {
    throw new BerthError('PERMISSION_DENIED', `job ${jobId} on ${node} belongs to another user; you can only run steps in your own jobs`);
  }
  return job;
}

export function makeAgentHandlers(trust: Trust, d: AgentServiceDeps): NodeAgentServiceHandlers {
  /** anyPhase: answered while recovering or stopping too (status for admins) */
  const unary = <Req, Res>(method: string, jobIdOf: (r: Req) => string, fn: (caller: Caller, req: Req) => Promise<Res>, anyPhase = false): grpc.handleUnaryCall<Req, Res> =>
    (call, callback) => {
      Promise.resolve()
        .then(() => anyPhase || d.lifecycle.assertServing(d.node))
        .then(() => d.auth.authenticate(trust, call.metadata, method, jobIdOf(call.request), call.getAuthContext?.()?.sslPeerCertificate))
        .then((caller) => fn(caller, call.request))
        .then((res) => callback(null, res), (err: unknown) => {
          if (!(err instanceof BerthError)) d.log.error(`${method} failed`, { error: String(err) });
          callback(toServiceError(err));
        });
    };

  return {
    JobPrologue: unary('JobPrologue', (r) => r.jobId, async (caller, r) => {
      requireRoot(caller, 'JobPrologue');
      const res = await countFailure(d, 'prolog', r.jobId, async () => {
        const began = new Date();
        try {
          // a drained node still answers a repeated prologue of a job already running here
          if (d.jobs.get(r.jobId)?.state !== 'RUNNING') d.drain.assertAccepting(d.node, r.jobId);
          return await d.jobs.prologue({
            jobId: r.jobId, uid: r.uid, gid: r.gid, user: r.user, image: r.image, requestedImage: r.requestedImage, workDir: r.workDir, cpus: r.cpus, memoryBytes: r.memoryBytes,
            options: optionsOf(r), account: r.account, partition: r.partition,
          });
        } catch (err) {
          // a job fault is recorded for the job's steps and answered as the job's (the prolog exits 0)
          throw await d.jobs.prologueFailed(r, err, began);
        }
      });
      return { job: toProtoJob(res.job), alreadyPrepared: res.alreadyPrepared, pullMillis: res.pullMillis };
    }),

    JobEpilogue: unary('JobEpilogue', (r) => r.jobId, async (caller, r) => {
      requireRoot(caller, 'JobEpilogue');
      await d.stepContainers?.settle(r.jobId);
      const res = await countFailure(d, 'epilog', r.jobId, () => d.jobs.epilogue(r.jobId));
      d.stepContainers?.forgetJob(r.jobId);
      return res;
    }),

    StepPrologue: unary('StepPrologue', (r) => r.jobId, async (caller, r) => {
      requireRoot(caller, 'StepPrologue');
      if (!d.stepContainers) throw new BerthError('INVALID_REQUEST', 'this berthd does not launch container steps');
      const steps = d.stepContainers;
      return logFailure(d, 'step prologue', { job: r.jobId, step: r.stepId }, () => steps.prologue({
        jobId: r.jobId, stepId: r.stepId, uid: r.uid, gid: r.gid, user: r.user, image: r.image, requestedImage: r.requestedImage, argv: r.argv,
        options: optionsOf(r),
      }).catch(async (err: unknown) => {
        throw await d.jobs.stepPrologueFailed(r, err);
      }));
    }),

    StepEpilogue: unary('StepEpilogue', (r) => r.jobId, async (caller, r) => {
      requireRoot(caller, 'StepEpilogue');
      if (!d.stepContainers) return { containerRemoved: false };
      return d.stepContainers.epilogue(r.jobId, r.stepId, r.hasStatus ? { exitCode: r.exitCode, signal: r.signal } : undefined);
    }),

    GetJob: unary('GetJob', (r) => r.jobId, async (caller, r) => ({
      job: toProtoJob(ownJob(caller, d.jobs.get(r.jobId), r.jobId, d.node, d.jobs.fault(r.jobId)), d.dockerOf?.(r.jobId)),
    })),

    ListJobs: unary('ListJobs', () => '', async (caller, r) => {
      const uid = caller.kind === 'user' ? caller.uid : r.uid;
      return { jobs: d.jobs.list().filter((j) => uid === 0 || j.uid === uid).map((j) => toProtoJob(j)) };
    }),

    ListImages: unary('ListImages', () => '', async (caller) => {
      requireRoot(caller, 'ListImages');
      const { images, usagePercent } = await d.imageCache.list();
      return { images: images.map(toProtoImage), diskUsagePercent: usagePercent };
    }),

    PruneImages: unary('PruneImages', () => '', async (caller, r) => {
      requireRoot(caller, 'PruneImages');
      const res = await d.imageCache.collect({ dryRun: r.dryRun, allUnused: r.allUnused });
      return {
        removed: res.removed.map((x) => ({ id: x.id, repoDigests: [x.ref], sizeBytes: x.sizeBytes })),
        freedBytes: res.freedBytes,
        diskUsagePercent: res.usagePercent,
        skipped: res.skipped ?? '',
      };
    }),

    GetStatus: unary('GetStatus', () => '', async (caller) => {
      requireRoot(caller, 'GetStatus');
      return toProtoStatus(await d.status());
    }, true),

    ListContainers: unary('ListContainers', () => '', async (caller) => {
      requireRoot(caller, 'ListContainers');
      return { containers: (await d.containers()).map((c) => ({ ...c, kind: `CONTAINER_KIND_${c.kind}` as const })) };
    }),

    SetDrain: unary('SetDrain', () => '', async (caller, r) => {
      requireRoot(caller, 'SetDrain');
      const by = callerName(caller);
      const changed = r.drain ? d.drain.drain(r.reason, by) : d.drain.resume();
      d.log.info(r.drain ? 'node drained for container jobs' : 'node resumed for container jobs', { reason: r.reason, by, changed });
      return { drain: toProtoDrain(d.drain.get()), changed };
    }, true),

    ExecStep: (call) => execStep(trust, d, call),

    QueryAccounting: (call) => {
      Promise.resolve()
        .then(() => d.auth.authenticate(trust, call.metadata, 'QueryAccounting', '', call.getAuthContext?.()?.sslPeerCertificate))
        .then(async (caller) => {
          const filter = parseAccountingFilter(call.request);
          if (caller.kind === 'user') {
            if (filter.uid !== undefined && filter.uid !== caller.uid) {
              throw new BerthError('PERMISSION_DENIED', `QueryAccounting: uid ${filter.uid} is another user's; you can only read your own records (leave out --user, or ask root)`);
            }
            filter.uid = caller.uid;
          }
          // batches of at most 1 MiB, well under the 8 MiB message limit; written as fast as the client reads
          for await (const batch of queryAccounting(d.accounting.file, d.accounting.rotation.keep, filter)) {
            if (call.cancelled) return;
            if (!call.write({ recordsJson: batch })) await once(call, 'drain');
          }
          call.end();
        })
        .catch((err: unknown) => {
          if (!(err instanceof BerthError)) d.log.error('QueryAccounting failed', { error: String(err) });
          call.emit('error', toServiceError(err));
        });
    },

    PullImage: (call) => {
      let last = 0;
      Promise.resolve()
        .then(() => d.lifecycle.assertServing(d.node))
        .then(() => d.auth.authenticate(trust, call.metadata, 'PullImage', '', call.getAuthContext?.()?.sslPeerCertificate))
        .then((caller) => requireRoot(caller, 'PullImage'))
        .then(() => d.images.ensure(call.request.image, { onProgress: (p) => {
          const now = Date.now();
          if (now - last < 100 && p.layersDone < p.layersTotal) return; // at most ten updates a second
          last = now;
          call.write({ progress: p });
        } }))
        .then((res) => {
          call.write({ done: { imageDigest: res.digestRef, pulled: res.pulled, millis: res.millis } });
          call.end();
        }, (err: unknown) => call.emit('error', toServiceError(err)));
    },
  };
}

/** A failed hook call counted by its error code (what slurmd logged), logged with its reason, then rethrown. */
async function countFailure<T>(d: AgentServiceDeps, hook: 'prolog' | 'epilog', jobId: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    d.metrics?.hookFailed(hook, err instanceof BerthError ? err.code : 'INTERNAL');
    logHookFailure(d, hook === 'prolog' ? 'prologue' : 'epilogue', { job: jobId }, err);
    throw err;
  }
}

async function logFailure<T>(d: AgentServiceDeps, what: string, fields: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    logHookFailure(d, what, fields, err);
    throw err;
  }
}

/**
 * berthd's own log has a line for every failed hook call, with the reason the hook was given
 * and whose fault it is (shared/fault-class.ts): a job fault fails the job, a node fault drains the node
 */
function logHookFailure(d: AgentServiceDeps, what: string, fields: Record<string, string>, err: unknown): void {
  const fault = err instanceof BerthError ? err.fault ?? faultOf(err.code) : 'node';
  d.log.warn(`${what} failed`, { ...fields, code: err instanceof BerthError ? err.code : 'INTERNAL', fault, error: err instanceof Error ? err.message : String(err) });
}

function execStep(trust: Trust, d: AgentServiceDeps, call: grpc.ServerDuplexStream<ExecStepRequest__Output, ExecStepResponse>): void {
  let step: RunningStep | undefined;
  let phase: 'waiting' | 'starting' | 'running' | 'done' = 'waiting';
  const pending: ExecStepRequest__Output[] = [];

  const fail = (err: unknown): void => {
    if (phase === 'done') return;
    phase = 'done';
    call.emit('error', toServiceError(err));
  };
  const apply = (m: ExecStepRequest__Output): void => {
    if (!step) return;
    try {
      if (m.msg === 'stdin' && m.stdin) step.write(m.stdin);
      else if (m.msg === 'stdinClose') step.closeStdin();
      else if (m.msg === 'signal' && m.signal) step.signal(m.signal);
      else if (m.msg === 'resize' && m.resize) step.resize(m.resize.rows, m.resize.cols);
    } catch (err) {
      call.write({ stderr: Buffer.from(`berth: ${(err as Error).message}\n`) });
    }
  };

  call.on('data', (m: ExecStepRequest__Output) => {
    if (phase === 'running') return apply(m);
    if (phase === 'starting') return void pending.push(m);
    if (phase !== 'waiting') return;
    if (m.msg !== 'start' || !m.start) return fail(new BerthError('INVALID_REQUEST', 'ExecStep: the first message must be `start`'));
    phase = 'starting';
    const s = m.start;
    void (async () => {
      d.lifecycle.assertServing(d.node);
      const caller = await d.auth.authenticate(trust, call.metadata, 'ExecStep', s.jobId, call.getAuthContext?.()?.sslPeerCertificate);
      const job = ownJob(caller, d.jobs.get(s.jobId), s.jobId, d.node, d.jobs.fault(s.jobId));
      const user = await d.identities.lookup(job.uid);
      const started = await d.steps.start(job, {
        stepId: s.stepId, taskId: s.taskId, argv: s.argv, cwd: s.cwd, env: s.env, tty: s.tty,
        ...(s.tty && s.rows > 0 && s.cols > 0 ? { size: { rows: s.rows, cols: s.cols } } : {}),
      }, user, {
        stdout: (chunk) => call.write({ stdout: chunk }),
        stderr: (chunk) => call.write({ stderr: chunk }),
      });
      step = started.step;
      if (call.cancelled) step.abort(d.stopGraceMs);
      phase = 'running';
      call.write({ started: { execId: step.execId, warnings: job.warnings ?? [] } });
      for (const p of pending.splice(0)) apply(p);
      const outcome = await step.done;
      if (call.cancelled) return;
      phase = 'done';
      call.write({ exit: { exitCode: outcome.exitCode, signal: outcome.signal } });
      call.end();
    })().catch(fail);
  });
  call.on('end', () => {
    if (phase === 'running') step?.closeStdin();
    else if (phase === 'starting') pending.push({ msg: 'stdinClose', stdinClose: true });
  });
  call.on('cancelled', () => {
    if (step) {
      d.log.warn('client went away; killing its step', { exec: step.execId });
      step.abort(d.stopGraceMs);
    }
  });
}

function toggle(t: string): boolean | undefined {
  return t === 'TOGGLE_ON' ? true : t === 'TOGGLE_OFF' ? false : undefined;
}

/** the --container-* options of a JobPrologue or StepPrologue request */
function optionsOf(r: { options: ContainerOptions__Output | null }): ContainerOptions {
  const o = r.options;
  return {
    mounts: (o?.mounts ?? []).map((m) => ({ source: m.source, target: m.target, readOnly: m.readOnly })),
    workdir: o?.workdir ?? '', envNames: o?.envNames ?? [], name: o?.name ?? '',
    mountHome: toggle(o?.mountHome ?? ''), readOnly: toggle(o?.readOnly ?? ''),
  };
}
