// Every RPC of berth.v1.NodeAgentService in one table: who may call it, in which phase of
// the agent and the node it is answered, where its job (and step) id is in the request, what
// berthd logs of its failures, and what it does. agent-service.ts serves the table: it checks
// the phase, authenticates the caller (auth/caller.ts: the munge credential names the method
// and the job id found here), holds the caller to the role, parses the ids once
// (shared/ids.ts), looks up an owned job, and maps errors to gRPC status (proto-mapping.ts).
// The handlers below take checked values only. A method of the proto service without an entry
// here does not compile (MethodTable), and test/unit/method-table.test.ts checks it at run time.
import { once } from 'node:events';
import { BerthError } from '../../shared/errors';
import { parseAccountingFilter, queryAccounting } from '../accounting/accounting-query';
import { callerName } from '../auth/caller';
import type { Role as RemoteRole } from '../auth/remote-access';
import { openExecStep } from './exec-step';
import { fromProtoOptions, toProtoContainer, toProtoDrain, toProtoImage, toProtoJob, toProtoPruned, toProtoPullProgress, toProtoStatus } from './proto-mapping';
import type { MethodSpec, MethodTable } from './method-types';

export type * from './method-types';

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
    handle: (d, { jobId }, r) => d.jobs.epilogue(jobId, r.saveImage ? { save: r.saveImage } : {}),
  },

  StepPrologue: {
    kind: 'unary', role: 'hook', phase: 'serving', scope: 'step', jobIdIn: (r) => r.jobId, stepIdIn: (r) => r.stepId, failures: { what: 'step prologue' },
    handle: async (d, { jobId, stepId }, r) => {
      if (!d.stepContainers) throw new BerthError('NOT_SERVED_ON_NODE', 'this berthd does not launch container steps');
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

  SubmitCheck: {
    // `berth submit-check` for the caller (berth-hook submit-check in an srun of a job): the
    // answer is the command's exit code and output; any error answer sends the client to the command
    kind: 'unary', role: 'user', phase: 'any', scope: 'node',
    handle: async (d, { caller }, r) => {
      if (!d.submitCheck) throw new BerthError('NOT_SERVED_ON_NODE', 'this berthd does not answer submit checks');
      const res = await d.submitCheck.check(caller, r.env);
      // what the user was told at their srun, for the admins (a check that passes is not logged)
      if (res.exitCode !== 0) d.log.info('submit check refused', { by: callerName(caller), exitCode: res.exitCode, reason: res.stderr.trim().split('\n')[0] });
      return res;
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
        call.write({ progress: toProtoPullProgress(p) });
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
