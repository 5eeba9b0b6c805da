// berth.v1.NodeAgentService served from its method table (method-table.ts). One instance per
// socket: the trust level of the socket decides how callers are authenticated
// (auth/caller.ts). Every call, unary or streaming, goes the same way before its handler:
// the agent's phase, the caller (its credential bound to the method and the request's job
// id), the caller's role, the job and step ids parsed once (shared/ids.ts), the node's drain
// for a new job, the caller's own job; and every failure is answered the same way
// (proto-mapping.ts), with berthd's log line for an unexpected error or a failed hook call.
import type * as grpc from '@grpc/grpc-js';
import { BerthError } from '../../shared/errors';
import { faultOf } from '../../shared/fault-class';
import type { NodeAgentServiceHandlers } from '../../shared/gen/berth/v1/NodeAgentService';
import { parseJobId, parseStepId } from '../../shared/ids';
import { type Caller, requireRoot, type Trust } from '../auth/caller';
import type { JobRecord } from '../jobs/job-record';
import type { JobFault } from '../jobs/job-faults';
import { type AgentServiceDeps, type CallContext, type FailureLog, type MethodName, type MethodSpec, METHODS, type MethodTable } from './method-table';
import { toServiceError } from './proto-mapping';

export type { AgentServiceDeps } from './method-table';

/** The job JOBID as CALLER may see it: a user only their own; a job fault is told to its user and root only. */
export function ownJob(caller: Caller, job: JobRecord | undefined, jobId: string, node: string, fault?: JobFault): JobRecord {
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

interface Incoming {
  metadata: grpc.Metadata;
  getAuthContext?: () => { sslPeerCertificate?: unknown } | undefined;
}

/** What every call of METHOD goes through, in this order; the context its handler takes. */
class Admission {
  constructor(private readonly trust: Trust, private readonly d: AgentServiceDeps, private readonly method: MethodName, private readonly spec: MethodSpec) {}

  /** the phase, the caller and its role: before anything of the request is looked at */
  async caller(call: Incoming, rawJobId: string): Promise<Caller> {
    const { d, spec, method } = this;
    if (spec.phase !== 'any') d.lifecycle.assertServing(d.node);
    const peer = call.getAuthContext?.()?.sslPeerCertificate as Parameters<AgentServiceDeps['auth']['authenticate']>[4];
    const caller = await d.auth.authenticate(this.trust, call.metadata, method, rawJobId, peer);
    if (spec.role !== 'user') requireRoot(caller, method);
    return caller;
  }

  /** the request's ids, parsed; the drain for a new job; the caller's own job */
  context(caller: Caller, req: unknown): CallContext {
    const { d, spec, method } = this;
    const ids = spec as { jobIdIn?: (r: unknown) => string; stepIdIn?: (r: unknown) => string };
    if (!ids.jobIdIn) return { caller };
    const jobId = parseJobId(ids.jobIdIn(req), method);
    const stepId = ids.stepIdIn ? parseStepId(ids.stepIdIn(req), method) : undefined;
    // a drained node still answers a repeated prologue of a job already running here
    if (spec.phase === 'new-job' && d.jobs.get(jobId)?.state !== 'RUNNING') d.drain.assertAccepting(d.node, jobId);
    const job = spec.scope === 'own-job' ? ownJob(caller, d.jobs.get(jobId), jobId, d.node, d.jobs.fault(jobId)) : undefined;
    return { caller, jobId, ...(stepId !== undefined ? { stepId } : {}), ...(job ? { job } : {}) } as CallContext;
  }

  /** the context, then FN; a hook call's failure is logged (and counted) with its class */
  async run<T>(caller: Caller, req: unknown, fn: (ctx: CallContext) => Promise<T>): Promise<T> {
    const failures = this.spec.failures;
    if (!failures) return fn(this.context(caller, req));
    try {
      return await fn(this.context(caller, req));
    } catch (err) {
      hookFailed(this.d, failures, this.spec.jobIdIn?.(req as never) ?? '', (this.spec as { stepIdIn?: (r: unknown) => string }).stepIdIn?.(req), err);
      throw err;
    }
  }

  /** the gRPC error for ERR; berthd's log has any error that is not one of berth's */
  answer(err: unknown): Partial<grpc.ServiceError> {
    if (!(err instanceof BerthError)) this.d.log.error(`${this.method} failed`, { error: String(err) });
    return toServiceError(err);
  }
}

/**
 * berthd's own log has a line for every failed hook call, with the reason the hook was given
 * and whose fault it is (shared/fault-class.ts): a job fault fails the job, a node fault drains the node
 */
function hookFailed(d: AgentServiceDeps, f: FailureLog, jobId: string, stepId: string | undefined, err: unknown): void {
  const code = err instanceof BerthError ? err.code : 'INTERNAL';
  if (f.metric) d.metrics?.hookFailed(f.metric, code);
  const fault = err instanceof BerthError ? err.fault ?? faultOf(err.code) : 'node';
  const fields = stepId === undefined ? { job: jobId } : { job: jobId, step: stepId };
  d.log.warn(`${f.what} failed`, { ...fields, code, fault, error: err instanceof Error ? err.message : String(err) });
}

function serve(trust: Trust, d: AgentServiceDeps, method: MethodName, spec: MethodSpec): grpc.UntypedHandleCall {
  const a = new Admission(trust, d, method, spec);
  const rawJobId = (r: unknown): string => (spec.jobIdIn as ((r: unknown) => string) | undefined)?.(r) ?? '';
  switch (spec.kind) {
    case 'unary': {
      const handle = spec.handle as (d: AgentServiceDeps, ctx: CallContext, req: unknown) => Promise<unknown>;
      const h: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
        a.caller(call, rawJobId(call.request))
          .then((caller) => a.run(caller, call.request, (ctx) => handle(d, ctx, call.request)))
          .then((res) => callback(null, res), (err: unknown) => callback(a.answer(err)));
      };
      return h;
    }
    case 'server-stream': {
      const handle = spec.handle as (d: AgentServiceDeps, ctx: CallContext, req: unknown, call: grpc.ServerWritableStream<unknown, unknown>) => Promise<void>;
      const h: grpc.handleServerStreamingCall<unknown, unknown> = (call) => {
        a.caller(call, rawJobId(call.request))
          .then((caller) => a.run(caller, call.request, (ctx) => handle(d, ctx, call.request, call)))
          .then(() => {
            if (!call.cancelled) call.end();
          }, (err: unknown) => call.emit('error', a.answer(err)));
      };
      return h;
    }
    case 'duplex': {
      const h: grpc.handleBidiStreamingCall<unknown, unknown> = (call) => {
        let session: { message(m: unknown): void; end(): void; cancelled(): void } | undefined;
        let refused = false;
        call.on('data', (m: unknown) => {
          if (session) return session.message(m);
          if (refused) return;
          const opening = (spec.opening as (m: unknown) => unknown)(m);
          if (opening === undefined) {
            refused = true;
            call.emit('error', a.answer(new BerthError('INVALID_REQUEST', spec.openingRequired)));
            return;
          }
          session = (spec.open as (d: AgentServiceDeps, call: unknown, o: unknown, s: unknown) => typeof session)(d, call, opening, {
            admit: async (o: unknown) => a.run(await a.caller(call, rawJobId(o)), o, async (ctx) => ctx),
            fail: (err: unknown) => call.emit('error', a.answer(err)),
          });
        });
        call.on('end', () => session?.end());
        call.on('cancelled', () => session?.cancelled());
      };
      return h;
    }
  }
}

/** The handlers of every method in TABLE, for the socket of TRUST. */
export function makeAgentHandlers(trust: Trust, d: AgentServiceDeps, table: MethodTable = METHODS): NodeAgentServiceHandlers {
  const handlers: Record<string, grpc.UntypedHandleCall> = {};
  for (const [method, spec] of Object.entries(table) as [MethodName, MethodSpec][]) handlers[method] = serve(trust, d, method, spec);
  return handlers as NodeAgentServiceHandlers;
}
