// How a native step's tasks ended, from the wait status slurmstepd gave the SPANK plugin for
// the node's first failing task (or its last): read the same way whether it reaches berthd in
// a StepEpilogue request (services/cli/hook.ts) or in a spooled step record
// (services/agent/steps/step-spool.ts).
import { constants } from 'node:os';

export interface StepOutcome {
  exitCode: number;
  /** the signal's name when a signal ended the task, else '' */
  signal: string;
}

/** the outcome a wait status (decimal text) stands for; undefined when there is none */
export function outcomeOfWaitStatus(text: string): StepOutcome | undefined {
  const t = text.trim();
  if (!/^-?[0-9]+$/.test(t)) return undefined;
  const status = Number(t);
  const sig = status & 0x7f;
  if (sig === 0) return { exitCode: (status >> 8) & 0xff, signal: '' };
  const name = Object.entries(constants.signals).find(([, n]) => n === sig)?.[0] ?? `SIG${sig}`;
  return { exitCode: 128 + sig, signal: name };
}
