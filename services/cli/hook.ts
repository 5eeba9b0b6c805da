// `berth hook prolog|epilog`, run by slurmd as root for every job on every allocated node.
// A failure prints one line naming the job, the image and the reason to stderr (slurmd logs
// it). A prologue that failed for the job's own reason (a job fault) exits 0: berthd recorded
// it and every step of the job fails with it, the node stays in service. Any other failure
// drains the node with berth's reason and exits non-zero; Slurm requeues the job
// (hook-faults.ts, docs/operations.md).
import type { StepPrologueResponse__Output } from '../shared/gen/berth/v1/StepPrologueResponse';
import os from 'node:os';
import { agentTarget, type AgentTarget, describeGrpcError, unaryCall } from './agent-client';
import { epilogueOrSpool, hookCall, retryWindowMs, secondsFromEnv } from './hook-retry';
import { expandHostlist } from '../shared/hostlist';
import { containerImage, expandCounts, type Env, nodeName } from './slurm-env';
import { type ContainerOptions, OPTION_ENV, optionsFromEnv } from '../shared/container-options';
import { REQUESTED_IMAGE_ENV, SAVE_ENV } from '../shared/spank-options';
import { drainForNodeFault, drainReason, hookFailure, type Scontrol, scontrolFor } from './hook-faults';
import { parseJobId, parseStepId } from '../shared/ids';
import { outcomeOfWaitStatus } from '../shared/wait-status';

/** the container options as JobPrologueRequest and StepPrologueRequest carry them */
function optionFields(o: ContainerOptions) {
  return {
    options: {
      mounts: o.mounts.map((m) => ({ source: m.source, target: m.target, readOnly: m.readOnly, propagation: m.propagation ?? '', tmpfsOptions: m.tmpfsOptions ?? [] })),
      workdir: o.workdir,
      envNames: o.envNames,
      name: o.name,
      nameFlag: o.nameFlag ?? '',
      mountHome: TOGGLE(o.mountHome),
      readOnly: TOGGLE(o.readOnly),
      unshare: [...(o.unshare ?? [])],
    },
  };
}

const TOGGLE = (b: boolean | undefined): 'TOGGLE_UNSPECIFIED' | 'TOGGLE_ON' | 'TOGGLE_OFF' => (b === undefined ? 'TOGGLE_UNSPECIFIED' : b ? 'TOGGLE_ON' : 'TOGGLE_OFF');

function num(text: string | undefined): number {
  const n = Number(text);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/**
 * CPUs and memory the job holds on this node, as far as the prolog environment tells:
 * SLURM_JOB_CPUS_PER_NODE ("2(x2),1") is in node-list order; memory is seldom there.
 * berthd asks slurmctld for the exact figures and uses these only when it cannot.
 */
export function allocationOnNode(env: Env): { cpus: number; memoryBytes: number } {
  const nodes = expandHostlist(env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? '');
  const index = Math.max(0, nodes.indexOf(env.SLURMD_NODENAME ?? ''));
  const cpus = num(env.SLURM_CPUS_ON_NODE) || (expandCounts(env.SLURM_JOB_CPUS_PER_NODE ?? '')[index] ?? 0);
  const perNodeMb = num(env.SLURM_MEM_PER_NODE);
  const perCpuMb = num(env.SLURM_MEM_PER_CPU);
  const mb = perNodeMb || perCpuMb * cpus;
  return { cpus, memoryBytes: mb * 1024 * 1024 };
}

/** --container-save's value for the epilog of the job's first node ('' elsewhere): one node pushes the job's container */
export function saveOnNode(env: Env, node: string): string {
  const save = (env[`SPANK_${SAVE_ENV}`] ?? '').trim();
  if (!save) return '';
  return expandHostlist(env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? '')[0] === node ? save : '';
}

export function prologueRequest(env: Env) {
  const { cpus, memoryBytes } = allocationOnNode(env);
  // the --container-* options the plugin passed on (checked at submit; berthd checks again)
  const o = optionsFromEnv(env, 'SPANK_');
  return {
    jobId: env.SLURM_JOB_ID ?? '',
    uid: Number(env.SLURM_JOB_UID ?? NaN),
    gid: Number(env.SLURM_JOB_GID ?? NaN),
    user: env.SLURM_JOB_USER ?? '',
    image: containerImage(env),
    requestedImage: (env[`SPANK_${REQUESTED_IMAGE_ENV}`] ?? '').trim(),
    workDir: env.SLURM_JOB_WORK_DIR ?? '',
    cpus,
    memoryBytes,
    nodeList: env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? '',
    numNodes: num(env.SLURM_JOB_NUM_NODES),
    partition: env.SLURM_JOB_PARTITION ?? '',
    account: env.SLURM_JOB_ACCOUNT ?? '',
    ...optionFields(o),
  };
}

export async function runHook(kind: 'prolog' | 'epilog', env: Env, stderr: (line: string) => void): Promise<number> {
  const jobId = env.SLURM_JOB_ID ?? '';
  const image = containerImage(env);
  const target: AgentTarget = agentTarget(nodeName(env, os.hostname().split('.')[0] ?? ''), env);
  // through a restart of berthd: hook-retry.ts
  const windowMs = retryWindowMs(env);
  try {
    // checked before berthd is asked: a malformed id is the node's fault (Slurm or the hook misconfigured)
    parseJobId(jobId, 'SLURM_JOB_ID');
    if (kind === 'prolog') {
      const req = prologueRequest(env);
      if (!Number.isInteger(req.uid) || !Number.isInteger(req.gid)) {
        const why = 'SLURM_JOB_UID/SLURM_JOB_GID missing from the prolog environment; is berth configured as Prolog= with PrologFlags=Alloc?';
        stderr(`berth prolog: job ${jobId}: ${why}`);
        await drainForNodeFault(target.node, jobId, drainReason('INVALID_REQUEST', `${why} (job ${jobId})`), scontrolFor(env));
        return 1;
      }
      const timeoutMs = secondsFromEnv(env.BERTH_PROLOG_TIMEOUT_SECONDS, 600_000);
      await hookCall(target, 'JobPrologue', jobId, (c, md, ms) => unaryCall(c.JobPrologue.bind(c), req, md, ms), { windowMs, timeoutMs });
    } else {
      // berthd away for the whole window: spooled for berthd to settle, and the node stays in service
      const timeoutMs = secondsFromEnv(env.BERTH_EPILOG_TIMEOUT_SECONDS, 300_000);
      const saveImage = saveOnNode(env, target.node);
      await epilogueOrSpool(target, jobId, env, (c, md, ms) => unaryCall(c.JobEpilogue.bind(c), { jobId, saveImage }, md, ms), { windowMs, timeoutMs, stderr });
    }
    return 0;
  } catch (err) {
    const reason = describeGrpcError(err, target);
    const what = reason.includes(`'${image}'`) ? '' : `, image '${image}'`;
    if (kind === 'prolog') return await prologFailed(err, { jobId, node: target.node, line: `job ${jobId} on ${target.node}${what}: ${reason}`, reason }, stderr, scontrolFor(env));
    stderr(`berth ${kind}: job ${jobId} on ${target.node}${what}: ${reason}`);
    return 1;
  }
}

/**
 * A failed JobPrologue: a job fault (berthd recorded it, every step of the job fails with
 * it) exits 0 and the node stays in service; a node fault drains the node with berth's
 * reason and exits 1 (hook-faults.ts).
 */
export async function prologFailed(err: unknown, what: { jobId: string; node: string; line: string; reason: string }, stderr: (line: string) => void, scontrol: Scontrol): Promise<number> {
  const failure = hookFailure(err);
  if (failure.fault === 'job') {
    stderr(`berth prolog: ${what.line} [a job fault (${failure.code}): the job's steps fail with this reason; the node stays in service]`);
    return 0;
  }
  const problems = await drainForNodeFault(what.node, what.jobId, drainReason(failure.code, `${what.reason.replace(new RegExp(`^job ${what.jobId}: `), '')} (job ${what.jobId})`), scontrol);
  stderr(`berth prolog: ${what.line} [a node fault (${failure.code}): the node is drained${problems.length ? `; ${problems.join('; ')}` : ''}]`);
  return 1;
}

/** The StepPrologue request from what the SPANK plugin passes (see berth_spank_tasks.c). */
export function stepPrologueRequest(env: Env) {
  const o = optionsFromEnv(env);
  return {
    jobId: env.SLURM_JOB_ID ?? '',
    stepId: env.SLURM_STEP_ID ?? '',
    uid: Number(env.SLURM_JOB_UID ?? NaN),
    gid: Number(env.SLURM_JOB_GID ?? NaN),
    user: env.SLURM_JOB_USER ?? '',
    image: (env[OPTION_ENV.image] ?? '').trim(),
    requestedImage: (env[REQUESTED_IMAGE_ENV] ?? '').trim(),
    ...optionFields(o),
    argv: (env.BERTH_STEP_ARGV ?? '').split('\x1f').filter((a, i) => a !== '' || i > 0),
  };
}

/** The StepEpilogue request: with how the tasks ended when slurmstepd said (a wait status). */
export function stepEpilogueRequest(env: Env) {
  const base = { jobId: env.SLURM_JOB_ID ?? '', stepId: env.SLURM_STEP_ID ?? '' };
  const outcome = outcomeOfWaitStatus(env.BERTH_STEP_WAIT_STATUS ?? '');
  return outcome ? { ...base, hasStatus: true, ...outcome } : { ...base, hasStatus: false, exitCode: 0, signal: '' };
}

/**
 * `berth hook step-prolog|step-epilog`: run by the SPANK plugin as root in slurmstepd, once
 * per container step and node. A failed step-prolog fails the step with this message
 * (srun prints it); a failed step-epilog is logged by slurmstepd.
 */
export async function runStepHook(kind: 'step-prolog' | 'step-epilog', env: Env, stderr: (line: string) => void): Promise<number> {
  const target: AgentTarget = agentTarget(nodeName(env, os.hostname().split('.')[0] ?? ''), env);
  const windowMs = retryWindowMs(env);
  const where = `job ${env.SLURM_JOB_ID ?? '?'} step ${env.SLURM_STEP_ID ?? '?'} on ${target.node}`;
  try {
    const jobId = parseJobId(env.SLURM_JOB_ID ?? '', 'SLURM_JOB_ID');
    parseStepId(env.SLURM_STEP_ID ?? '', 'SLURM_STEP_ID');
    if (kind === 'step-prolog') {
      const req = stepPrologueRequest(env);
      const timeoutMs = secondsFromEnv(env.BERTH_PROLOG_TIMEOUT_SECONDS, 600_000);
      const { value: res } = await hookCall(target, 'StepPrologue', jobId,
        (c, md, ms): Promise<StepPrologueResponse__Output> => unaryCall(c.StepPrologue.bind(c), req, md, ms), { windowMs, timeoutMs });
      // on stdout: the SPANK plugin reads it after a successful hook and shows it on task 0's stderr
      for (const w of res.warnings ?? []) process.stdout.write(`${w}\n`);
    } else {
      await hookCall(target, 'StepEpilogue', jobId, (c, md, ms) => unaryCall(c.StepEpilogue.bind(c), stepEpilogueRequest(env), md, ms), { windowMs, timeoutMs: 120_000 });
    }
    return 0;
  } catch (err) {
    const reason = describeGrpcError(err, target);
    stderr(`berth: ${where}: ${reason}`);
    // the step fails either way (the plugin prints this); a node fault also drains the node
    const failure = hookFailure(err);
    if (kind === 'step-prolog' && failure.fault === 'node') await drainForNodeFault(target.node, env.SLURM_JOB_ID ?? '', drainReason(failure.code, `${where}: ${reason}`), scontrolFor(env));
    return 1;
  }
}
