// Slurm job and step ids, one grammar for all of berth. A job id is digits only, at most 20
// (Slurm's job ids are 32-bit today; 20 digits hold any 64-bit number); a step id is digits or
// `batch`. Every boundary that takes an id from outside (the CLI, an RPC, a task file, a spool
// or fault file name, a certificate) parses it once with parseJobId/parseStepId; inside, the
// branded types say it was checked, so the same id is accepted or refused everywhere alike.
import { BerthError } from './errors';

declare const jobIdBrand: unique symbol;
declare const stepIdBrand: unique symbol;

/** a string that passed parseJobId */
export type JobId = string & { readonly [jobIdBrand]: true };
/** a string that passed parseStepId */
export type StepId = string & { readonly [stepIdBrand]: true };

export const JOB_ID_PATTERN = /^[0-9]{1,20}$/;
export const STEP_ID_PATTERN = /^([0-9]{1,20}|batch)$/;

export function isJobId(value: string): value is JobId {
  return JOB_ID_PATTERN.test(value);
}

export function isStepId(value: string): value is StepId {
  return STEP_ID_PATTERN.test(value);
}

/** `${where}: ` before the message, when the caller names where the id came from */
const at = (where: string | undefined): string => (where ? `${where}: ` : '');

/**
 * VALUE as a job id, or INVALID_REQUEST saying what was wrong and what a job id looks like.
 * WHERE names the boundary (an RPC method, an option, an environment variable).
 */
export function parseJobId(value: string, where?: string): JobId {
  if (isJobId(value)) return value;
  const what = value === '' ? 'no job id was given' : `job id '${value}' is not a Slurm job id`;
  throw new BerthError('INVALID_REQUEST', `${at(where)}${what}: a job id is digits only, at most 20, as squeue shows it (e.g. 1234)`);
}

/** VALUE as a step id (digits or `batch`), or INVALID_REQUEST saying so. */
export function parseStepId(value: string, where?: string): StepId {
  if (isStepId(value)) return value;
  const what = value === '' ? 'no step id was given' : `step id '${value}' is not a Slurm step id`;
  throw new BerthError('INVALID_REQUEST', `${at(where)}${what}: a step id is digits or 'batch', as squeue --steps shows it after the job id and a dot (e.g. 1234.0)`);
}
