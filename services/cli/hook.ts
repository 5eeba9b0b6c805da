// `berth hook prolog|epilog`, run by slurmd as root for every job on every allocated node.
// A failure prints one line naming the job, the image and the reason to stderr (slurmd logs
// it) and exits non-zero; Slurm then drains the node and requeues the job (docs/operations.md).
import type { StepPrologueResponse__Output } from '../shared/gen/berth/v1/StepPrologueResponse';
import type * as grpc from '@grpc/grpc-js';
import os, { constants } from 'node:os';
import { agentTarget, type AgentTarget, callMetadata, connect, describeGrpcError, unaryCall } from './agent-client';
import { expandHostlist } from '../shared/hostlist';
import { containerImage, expandCounts, type Env, nodeName } from './slurm-env';
import { type ContainerOptions, optionsFromEnv } from '../shared/container-options';

/** the container options as JobPrologueRequest and StepPrologueRequest carry them */
function optionFields(o: ContainerOptions) {
  return {
    options: {
      mounts: o.mounts,
      workdir: o.workdir,
      envNames: o.envNames,
      name: o.name,
      mountHome: TOGGLE(o.mountHome),
      readOnly: TOGGLE(o.readOnly),
    },
  };
}

const TOGGLE = (b: boolean | undefined): 'TOGGLE_UNSPECIFIED' | 'TOGGLE_ON' | 'TOGGLE_OFF' => (b === undefined ? 'TOGGLE_UNSPECIFIED' : b ? 'TOGGLE_ON' : 'TOGGLE_OFF');

const RETRY_DELAYS_MS = [100, 250, 500, 1000];

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
    requestedImage: (env.SPANK_BERTH_CONTAINER_IMAGE_REQUESTED ?? '').trim(),
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

async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const unavailable = (err as grpc.ServiceError | null)?.code === 14;
      const delay = RETRY_DELAYS_MS[attempt];
      if (!unavailable || delay === undefined) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

export async function runHook(kind: 'prolog' | 'epilog', env: Env, stderr: (line: string) => void): Promise<number> {
  const jobId = env.SLURM_JOB_ID ?? '';
  const image = containerImage(env);
  const target: AgentTarget = agentTarget(nodeName(env, os.hostname().split('.')[0] ?? ''), env);
  const client = connect(target);
  try {
    if (kind === 'prolog') {
      const req = prologueRequest(env);
      if (!Number.isInteger(req.uid) || !Number.isInteger(req.gid)) {
        stderr(`berth prolog: job ${jobId}: SLURM_JOB_UID/SLURM_JOB_GID missing from the prolog environment; is berth configured as Prolog= with PrologFlags=Alloc?`);
        return 1;
      }
      const md = await callMetadata(target, 'JobPrologue', jobId);
      const deadline = num(env.BERTH_PROLOG_TIMEOUT_SECONDS) * 1000 || 600_000;
      await withRetry(() => unaryCall(client.JobPrologue.bind(client), req, md, deadline));
    } else {
      const md = await callMetadata(target, 'JobEpilogue', jobId);
      await withRetry(() => unaryCall(client.JobEpilogue.bind(client), { jobId }, md, 300_000));
    }
    return 0;
  } catch (err) {
    const reason = describeGrpcError(err, target);
    const what = reason.includes(`'${image}'`) ? '' : `, image '${image}'`;
    stderr(`berth ${kind}: job ${jobId} on ${target.node}${what}: ${reason}`);
    return 1;
  } finally {
    client.close();
  }
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
    image: (env.BERTH_CONTAINER_IMAGE ?? '').trim(),
    requestedImage: (env.BERTH_CONTAINER_IMAGE_REQUESTED ?? '').trim(),
    ...optionFields(o),
    argv: (env.BERTH_STEP_ARGV ?? '').split('\x1f').filter((a, i) => a !== '' || i > 0),
  };
}

/** The StepEpilogue request: with how the tasks ended when slurmstepd said (a wait status). */
export function stepEpilogueRequest(env: Env) {
  const text = (env.BERTH_STEP_WAIT_STATUS ?? '').trim();
  const base = { jobId: env.SLURM_JOB_ID ?? '', stepId: env.SLURM_STEP_ID ?? '' };
  if (!/^-?[0-9]+$/.test(text)) return { ...base, hasStatus: false, exitCode: 0, signal: '' };
  const status = Number(text);
  const sig = status & 0x7f;
  if (sig === 0) return { ...base, hasStatus: true, exitCode: (status >> 8) & 0xff, signal: '' };
  const name = Object.entries(constants.signals).find(([, n]) => n === sig)?.[0] ?? `SIG${sig}`;
  return { ...base, hasStatus: true, exitCode: 128 + sig, signal: name };
}

/**
 * `berth hook step-prolog|step-epilog`: run by the SPANK plugin as root in slurmstepd, once
 * per container step and node. A failed step-prolog fails the step with this message
 * (srun prints it); a failed step-epilog is logged by slurmstepd.
 */
export async function runStepHook(kind: 'step-prolog' | 'step-epilog', env: Env, stderr: (line: string) => void): Promise<number> {
  const target: AgentTarget = agentTarget(nodeName(env, os.hostname().split('.')[0] ?? ''), env);
  const client = connect(target);
  const where = `job ${env.SLURM_JOB_ID ?? '?'} step ${env.SLURM_STEP_ID ?? '?'} on ${target.node}`;
  try {
    if (kind === 'step-prolog') {
      const req = stepPrologueRequest(env);
      const md = await callMetadata(target, 'StepPrologue', req.jobId);
      const res: StepPrologueResponse__Output = await withRetry(() => unaryCall(client.StepPrologue.bind(client), req, md, num(env.BERTH_PROLOG_TIMEOUT_SECONDS) * 1000 || 600_000));
      // on stdout: the SPANK plugin reads it after a successful hook and shows it on task 0's stderr
      for (const w of res.warnings ?? []) process.stdout.write(`${w}\n`);
    } else {
      const md = await callMetadata(target, 'StepEpilogue', env.SLURM_JOB_ID ?? '');
      await withRetry(() => unaryCall(client.StepEpilogue.bind(client), stepEpilogueRequest(env), md, 120_000));
    }
    return 0;
  } catch (err) {
    stderr(`berth: ${where}: ${describeGrpcError(err, target)}`);
    return 1;
  } finally {
    client.close();
  }
}
