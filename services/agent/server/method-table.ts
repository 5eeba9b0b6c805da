// Every RPC of berth.v1.NodeAgentService in one table: who may call it, in which phase of
// the agent and the node it is answered, where its job (and step) id is in the request, what
// berthd logs of its failures, and what it does. agent-service.ts serves the table: it checks
// the phase, authenticates the caller (auth/caller.ts: the munge credential names the method
// and the job id found here), holds the caller to the role, parses the ids once
// (shared/ids.ts), looks up an owned job, and maps errors to gRPC status (proto-mapping.ts).
// The handlers below take checked values only. A method of the proto service without an entry
// here does not compile (MethodTable), and test/unit/method-table.test.ts checks it at run time.
import type * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import { BerthError } from '../../shared/errors';
import type { ExecStart__Output } from '../../shared/gen/berth/v1/ExecStart';
import type { NodeAgentServiceHandlers } from '../../shared/gen/berth/v1/NodeAgentService';
import type { JobId, StepId } from '../../shared/ids';
import { parseAccountingFilter, queryAccounting } from '../accounting/accounting-query';
import type { DrainStore } from '../admin/drain-store';
import type { ManagedContainerView } from '../admin/managed-containers';
import type { NodeStatus } from '../admin/node-status';
import { type Caller, type CallerAuthenticator, callerName } from '../auth/caller';
import type { Role as RemoteRole } from '../auth/remote-access';
import type { ImageCache } from '../housekeeping/image-cache';
import type { IdentityResolver } from '../identity/nss';
import type { ImageService } from '../images/image-service';
import type { JobRecord } from '../jobs/job-record';
import type { JobService } from '../jobs/job-service';
import type { Lifecycle } from '../lifecycle';
import type { HookMetrics } from '../metrics/agent-metrics';
import type { StepContainers } from '../steps/step-containers';
import type { StepRunner } from '../steps/step-runner';
import { openExecStep } from './exec-step';
import { fromProtoOptions, toProtoContainer, toProtoDrain, toProtoImage, toProtoJob, toProtoPruned, toProtoStatus } from './proto-mapping';

/** what the handlers log to: berthd's winston logger, or a fake in tests */
export interface ServiceLog {
  info(message: string, meta?: object): unknown;
  warn(message: string, meta?: object): unknown;
  error(message: string, meta?: object): unknown;
}

/** The services behind the RPCs, each as narrow as the handlers use it. */
export interface AgentServiceDeps {
  jobs: Pick<JobService, 'get' | 'fault' | 'list' | 'prologue' | 'prologueFailed' | 'epilogue' | 'stepPrologueFailed'>;
  steps: Pick<StepRunner, 'start'>;
  auth: Pick<CallerAuthenticator, 'authenticate'>;
  identities: Pick<IdentityResolver, 'lookup'>;
  node: string;
  stopGraceMs: number;
  lifecycle: Pick<Lifecycle, 'assertServing'>;
  log: ServiceLog;
  imageCache: Pick<ImageCache, 'list' | 'collect'>;
  images: Pick<ImageService, 'ensure'>;
  /** the accounting log QueryAccounting reads: the current file and `keep` rotated ones */
  accounting: { file: string; rotation: { keep: number } };
  metrics?: HookMetrics;
  /** Docker access of a job, when the site enables it */
  dockerOf?: (jobId: JobId) => { host: string; certPath: string };
  /** containers for natively launched steps (SPANK plugin) */
  stepContainers?: Pick<StepContainers, 'prologue' | 'epilogue'>;
  drain: Pick<DrainStore, 'assertAccepting' | 'drain' | 'resume' | 'get'>;
  status: () => Promise<NodeStatus>;
  containers: () => Promise<ManagedContainerView[]>;
}

/**
 * Who may call a method:
 * - hook: slurmd's prolog/epilog and the SPANK plugin, i.e. root on the node (the admin socket,
 *   or munge uid 0); never served over TCP;
 * - admin: root on the node, or a remote caller whose role allows it (`remote`);
 * - user: any authenticated caller; a user is held to their own jobs (scope `own-job`) or
 *   records (the handler forces the uid filter to theirs).
 */
export type MethodRole = 'hook' | 'admin' | 'user';

/**
 * When a method is answered:
 * - serving: only while the agent is serving (else AGENT_UNAVAILABLE: recovering or stopping);
 * - any: also while recovering or stopping (it reads files or state only);
 * - new-job: serving, and a node drained for container jobs refuses it (NODE_DRAINED),
 *   except a repeated prologue of a job already running here.
 */
export type MethodPhase = 'serving' | 'any' | 'new-job';

/**
 * What a method acts on, and so what the wiring checks before its handler runs:
 * - node: no job id (the munge credential is bound to '');
 * - job / step: a job id (and a step id), parsed from the request;
 * - own-job: a job id of a job berthd holds on this node, owned by the calling user.
 */
export type MethodScope = 'node' | 'job' | 'step' | 'own-job';

export interface CallContext { caller: Caller }
export interface JobContext extends CallContext { jobId: JobId }
export interface StepContext extends JobContext { stepId: StepId }
export interface OwnJobContext extends JobContext { job: JobRecord }
export type ContextOf<S extends MethodScope> =
  S extends 'node' ? CallContext : S extends 'job' ? JobContext : S extends 'step' ? StepContext : OwnJobContext;

/** A hook call whose failure berthd's log has, with its class; prolog and epilog are also counted (metrics). */
export interface FailureLog {
  what: string;
  metric?: 'prolog' | 'epilog';
}

/** where the ids are in a request (or in ExecStep's opening message) */
type IdsOf<Q, S extends MethodScope> = S extends 'node'
  ? { jobIdIn?: never; stepIdIn?: never }
  : S extends 'step'
    ? { jobIdIn: (r: Q) => string; stepIdIn: (r: Q) => string }
    : { jobIdIn: (r: Q) => string; stepIdIn?: never };

interface Common<S extends MethodScope> {
  role: MethodRole;
  phase: MethodPhase;
  scope: S;
  /** the role a TCP client needs (auth/remote-access.ts); absent: never served over TCP */
  remote?: RemoteRole;
  failures?: FailureLog;
}

export type UnarySpec<Q, R> = { [S in MethodScope]: Common<S> & IdsOf<Q, S> & {
  kind: 'unary';
  handle(d: AgentServiceDeps, ctx: ContextOf<S>, req: Q): Promise<R>;
} }[MethodScope];

/** a server stream: the wiring ends it when `handle` resolves (unless the client went away) */
export type ServerStreamSpec<Q, R> = { [S in MethodScope]: Common<S> & IdsOf<Q, S> & {
  kind: 'server-stream';
  handle(d: AgentServiceDeps, ctx: ContextOf<S>, req: Q, call: grpc.ServerWritableStream<Q, R>): Promise<void>;
} }[MethodScope];

/**
 * A bidirectional stream whose first message opens it (ExecStep's `start`): the wiring admits
 * the caller on that message, then the session runs (exec-step.ts).
 */
export type DuplexSpec<Q, R, O> = { [S in MethodScope]: Common<S> & IdsOf<O, S> & {
  kind: 'duplex';
  /** the opening message, or undefined when the first message is not one */
  opening(m: Q): O | undefined;
  /** the message refusing a call whose first message does not open it (INVALID_REQUEST) */
  openingRequired: string;
  /** starts the session on the opening message; it gets the call's later messages */
  open(d: AgentServiceDeps, call: grpc.ServerDuplexStream<Q, R>, opening: O, session: DuplexSession<O, ContextOf<S>>): DuplexHandlers<Q>;
} }[MethodScope];

/** a duplex session's part of the call's events after the opening message */
export interface DuplexHandlers<Q> {
  message(m: Q): void;
  /** the client closed its side */
  end(): void;
  /** the client went away */
  cancelled(): void;
}

/** what the wiring gives a duplex session: admission on the opening message, and the one error answer */
export interface DuplexSession<O, C> {
  admit(opening: O): Promise<C>;
  /** answers the call with ERR (once; later calls are ignored by the session) */
  fail(err: unknown): void;
}

type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : K]: T[K] };
export type MethodName = KnownKeys<NodeAgentServiceHandlers> & string;

type SpecOf<H> =
  H extends grpc.handleUnaryCall<infer Q, infer R> ? UnarySpec<Q, R>
    : H extends grpc.handleServerStreamingCall<infer Q, infer R> ? ServerStreamSpec<Q, R>
      : H extends grpc.handleBidiStreamingCall<infer Q, infer R> ? DuplexSpec<Q, R, ExecStart__Output>
        : never;

export type MethodSpec = UnarySpec<never, unknown> | ServerStreamSpec<never, unknown> | DuplexSpec<never, unknown, never>;
export type MethodTable = { readonly [M in MethodName]: SpecOf<NodeAgentServiceHandlers[M]> };

export const METHODS: MethodTable = Object.freeze({
  JobPrologue: {
    kind: 'unary', role: 'hook', phase: 'new-job', scope: 'job', jobIdIn: (r) => r.jobId, failures: { what: 'prologue', metric: 'prolog' },
    handle: async (d, { jobId }, r) => {
      const began = new Date();
      try {
        const res = await d.jobs.prologue({
          jobId, uid: r.uid, gid: r.gid, user: r.user, image: r.image, requestedImage: r.requestedImage, workDir: r.workDir, cpus: r.cpus, memoryBytes: r.memoryBytes,
          options: fromProtoOptions(r.options), account: r.account, partition: r.partition,
        });
        return { job: toProtoJob(res.job), alreadyPrepared: res.alreadyPrepared, pullMillis: res.pullMillis };
      } catch (err) {
        // a job fault is recorded for the job's steps and answered as the job's (the prolog exits 0)
        throw await d.jobs.prologueFailed({ ...r, jobId }, err, began);
      }
    },
  },

  JobEpilogue: {
    kind: 'unary', role: 'hook', phase: 'serving', scope: 'job', jobIdIn: (r) => r.jobId, failures: { what: 'epilogue', metric: 'epilog' },
    // the epilogue settles the job's steps and removes its step containers too
    handle: (d, { jobId }) => d.jobs.epilogue(jobId),
  },

  StepPrologue: {
    kind: 'unary', role: 'hook', phase: 'serving', scope: 'step', jobIdIn: (r) => r.jobId, stepIdIn: (r) => r.stepId, failures: { what: 'step prologue' },
    handle: async (d, { jobId, stepId }, r) => {
      if (!d.stepContainers) throw new BerthError('INVALID_REQUEST', 'this berthd does not launch container steps');
      return d.stepContainers.prologue({
        jobId, stepId, uid: r.uid, gid: r.gid, user: r.user, image: r.image, requestedImage: r.requestedImage, argv: r.argv,
        options: fromProtoOptions(r.options),
      }).catch(async (err: unknown) => {
        throw await d.jobs.stepPrologueFailed({ jobId, stepId }, err);
      });
    },
  },

  StepEpilogue: {
    kind: 'unary', role: 'hook', phase: 'serving', scope: 'step', jobIdIn: (r) => r.jobId, stepIdIn: (r) => r.stepId,
    handle: async (d, { jobId, stepId }, r) => {
      if (!d.stepContainers) return { containerRemoved: false };
      return d.stepContainers.epilogue(jobId, stepId, r.hasStatus ? { exitCode: r.exitCode, signal: r.signal } : undefined);
    },
  },

  GetJob: {
    kind: 'unary', role: 'user', phase: 'serving', scope: 'own-job', jobIdIn: (r) => r.jobId, remote: 'read',
    handle: async (d, { jobId, job }) => ({ job: toProtoJob(job, d.dockerOf?.(jobId)) }),
  },

  ListJobs: {
    kind: 'unary', role: 'user', phase: 'serving', scope: 'node', remote: 'read',
    handle: async (d, { caller }, r) => {
      const uid = caller.kind === 'user' ? caller.uid : r.uid;
      return { jobs: d.jobs.list().filter((j) => uid === 0 || j.uid === uid).map((j) => toProtoJob(j)) };
    },
  },

  ListImages: {
    kind: 'unary', role: 'admin', phase: 'serving', scope: 'node', remote: 'read',
    handle: async (d) => {
      const { images, usagePercent } = await d.imageCache.list();
      return { images: images.map(toProtoImage), diskUsagePercent: usagePercent };
    },
  },

  PruneImages: {
    kind: 'unary', role: 'admin', phase: 'serving', scope: 'node', remote: 'admin',
    handle: async (d, _ctx, r) => toProtoPruned(await d.imageCache.collect({ dryRun: r.dryRun, allUnused: r.allUnused })),
  },

  GetStatus: {
    kind: 'unary', role: 'admin', phase: 'any', scope: 'node', remote: 'read',
    handle: async (d) => toProtoStatus(await d.status()),
  },

  ListContainers: {
    kind: 'unary', role: 'admin', phase: 'serving', scope: 'node', remote: 'read',
    handle: async (d) => ({ containers: (await d.containers()).map(toProtoContainer) }),
  },

  SetDrain: {
    kind: 'unary', role: 'admin', phase: 'any', scope: 'node', remote: 'admin',
    handle: async (d, { caller }, r) => {
      const by = callerName(caller);
      const changed = r.drain ? d.drain.drain(r.reason, by) : d.drain.resume();
      d.log.info(r.drain ? 'node drained for container jobs' : 'node resumed for container jobs', { reason: r.reason, by, changed });
      return { drain: toProtoDrain(d.drain.get()), changed };
    },
  },

  ExecStep: {
    kind: 'duplex', role: 'user', phase: 'serving', scope: 'own-job', jobIdIn: (s) => s.jobId,
    opening: (m) => (m.msg === 'start' && m.start ? m.start : undefined),
    openingRequired: 'ExecStep: the first message must be `start`',
    open: openExecStep,
  },

  QueryAccounting: {
    // reads files only: answered while recovering too; the job id in the request is a filter, checked there
    kind: 'server-stream', role: 'user', phase: 'any', scope: 'node', remote: 'read',
    handle: async (d, { caller }, req, call) => {
      const filter = parseAccountingFilter(req);
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
    },
  },

  PullImage: {
    kind: 'server-stream', role: 'admin', phase: 'serving', scope: 'node', remote: 'admin',
    handle: async (d, _ctx, req, call) => {
      let last = 0;
      const res = await d.images.ensure(req.image, { onProgress: (p) => {
        const now = Date.now();
        if (now - last < 100 && p.layersDone < p.layersTotal) return; // at most ten updates a second
        last = now;
        call.write({ progress: p });
      } });
      call.write({ done: { imageDigest: res.digestRef, pulled: res.pulled, millis: res.millis } });
    },
  },
});

/** The role each method needs over TCP (auth/remote-access.ts); a method absent is never served there. */
export function remoteRoles(table: MethodTable = METHODS): Readonly<Record<string, RemoteRole>> {
  const out: Record<string, RemoteRole> = {};
  for (const [name, spec] of Object.entries(table) as [string, MethodSpec][]) if (spec.remote) out[name] = spec.remote;
  return Object.freeze(out);
}
