// The types of the method table (method-table.ts): roles, phases, scopes, the contexts the
// handlers get, and what a service must provide. Apart from the table so that the modules the
// table's handlers call (exec-step.ts) can use them without importing the table back.
import type * as grpc from '@grpc/grpc-js';
import type { ExecStart__Output } from '../../shared/gen/berth/v1/ExecStart';
import type { NodeAgentServiceHandlers } from '../../shared/gen/berth/v1/NodeAgentService';
import type { JobId, StepId } from '../../shared/ids';
import type { DrainStore } from '../admin/drain-store';
import type { ManagedContainerView } from '../admin/managed-containers';
import type { NodeStatus } from '../admin/node-status';
import type { Caller, CallerAuthenticator } from '../auth/caller';
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
import type { SubmitChecker } from '../submit/submit-checker';

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
  /** `berth submit-check` answered for the caller (SubmitCheck) */
  submitCheck?: Pick<SubmitChecker, 'check'>;
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
