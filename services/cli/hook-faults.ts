// What a failed prologue or step prologue does, by whose fault it is (shared/fault-class.ts,
// docs/operations.md "Job faults and node faults"):
//   a job fault: berthd has recorded it for the job's steps, which fail with the reason; the
//     prolog says so on stderr and exits 0, so slurmd keeps the node in service;
//   a node fault: the node is drained with a reason naming berth and the cause (sinfo -R),
//     set before the prolog exits non-zero, because slurmctld drains a node that is not yet
//     drained with a bare "Prolog error"; the job's AdminComment says why it is requeued.
import { execFile } from 'node:child_process';
import type * as grpc from '@grpc/grpc-js';
import { FAULT_METADATA_KEY, faultCause, type FaultClass } from '../shared/fault-class';
import { isUnreachable } from './agent-client';
import { isJobId } from '../shared/ids';
import { BerthError } from '../shared/errors';

const SCONTROL_TIMEOUT_MS = 10_000;
/** slurmd gives its prolog a bare environment: find scontrol where Slurm installs it */
const SLURM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface HookFailure {
  fault: FaultClass;
  /** berth's error code, or what the hook met when berthd gave none */
  code: string;
}

/** Whose fault a failed call is: 'job' only when berthd says so; anything else is the node's. */
export function hookFailure(err: unknown): HookFailure {
  // the hook's own refusal before it called berthd (a malformed id in Slurm's environment)
  if (err instanceof BerthError) return { fault: 'node', code: err.code };
  const e = err as Partial<grpc.ServiceError> | null;
  const md = e?.metadata;
  const said = (key: string): string | undefined => {
    const v = typeof md?.get === 'function' ? md.get(key)[0] : undefined;
    return typeof v === 'string' ? v : undefined;
  };
  const code = said('x-berth-error-code') ?? (isUnreachable(err) ? 'AGENT_UNAVAILABLE' : e?.code === 4 ? 'TIMEOUT' : 'UNKNOWN');
  return { fault: said(FAULT_METADATA_KEY) === 'job' ? 'job' : 'node', code };
}

/** The drain reason of a node fault: berth and the cause first, in the 20 characters sinfo -R shows. */
export function drainReason(code: string, reason: string): string {
  return `berth: ${faultCause(code)}: ${reason.replace(/\s+/g, ' ')}`.slice(0, 250);
}

export type Scontrol = (args: string[]) => Promise<void>;

/**
 * Whether the hook runs where Slurm runs it — slurmd's prolog (SLURM_SCRIPT_CONTEXT) or the
 * SPANK plugin in slurmstepd (BERTH_HOOK_CONTEXT) — and so may drain the node it runs for.
 * Run by hand or by a test, a hook never touches Slurm's nodes or jobs.
 */
export function inSlurm(env: Record<string, string | undefined>): boolean {
  return env.SLURM_SCRIPT_CONTEXT === 'prolog_slurmd' || env.BERTH_HOOK_CONTEXT === 'slurmstepd';
}

/** scontrol for a hook: the real one in Slurm's hooks, none elsewhere */
export function scontrolFor(env: Record<string, string | undefined>): Scontrol {
  return inSlurm(env) ? runScontrol : async () => {
    throw new Error('the hook was not run by slurmd or slurmstepd');
  };
}

export const runScontrol: Scontrol = (args) => new Promise((resolve, reject) => {
  const env = { ...process.env, PATH: process.env.PATH ? `${process.env.PATH}:${SLURM_PATH}` : SLURM_PATH };
  execFile('scontrol', args, { timeout: SCONTROL_TIMEOUT_MS, env }, (err, _out, stderr) => (err ? reject(new Error(stderr.trim() || err.message)) : resolve()));
});

/**
 * Drains NODE in Slurm with REASON (and notes it on the job), before the hook fails: what
 * could not be done is returned, for the hook's own line on stderr.
 */
export async function drainForNodeFault(node: string, jobId: string, reason: string, scontrol: Scontrol): Promise<string[]> {
  const problems: string[] = [];
  const calls: Promise<void>[] = [
    scontrol(['update', `nodename=${node}`, 'state=drain', `reason=${reason}`]).catch((err: unknown) => {
      problems.push(`could not drain ${node} with berth's reason (${(err as Error).message}); slurmd drains it with "Prolog error"`);
    }),
  ];
  if (isJobId(jobId)) {
    calls.push(scontrol(['update', `jobid=${jobId}`, `admincomment=${reason.slice(0, 1000)}`]).catch(() => undefined));
  }
  await Promise.all(calls);
  return problems;
}
