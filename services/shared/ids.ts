// Slurm job ids, one grammar for all of berth: digits only, at most 20 (Slurm's job ids are
// 32-bit today; 20 digits hold any 64-bit number). Every boundary that takes a job id from
// outside (the CLI, an RPC, a task file, a spool or fault file name, a certificate) checks it
// with this, so the same id is accepted or refused everywhere alike.
export const JOB_ID_PATTERN = /^[0-9]{1,20}$/;

export function isJobId(value: string): boolean {
  return JOB_ID_PATTERN.test(value);
}
