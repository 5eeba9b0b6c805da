// The CLI parses the job and step ids it is given (Slurm's environment, arguments) once,
// before it calls berthd, and says what was wrong.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { BerthError } from '../../services/shared/errors';
import { EXIT_BERTH_ERROR, type ExecIo, runExec } from '../../services/cli/exec';
import { runStepHook } from '../../services/cli/hook';
import { hookFailure } from '../../services/cli/hook-faults';

function io(): ExecIo & { err: () => string } {
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { stdin: new PassThrough() as never, stdout: new PassThrough() as never, stderr, err: () => err };
}

describe('job and step ids at the CLI', () => {
  it('berth exec refuses a SLURM_JOB_ID that is not a job id, before it asks berthd', async () => {
    const t = io();
    const code = await runExec(['true'], { SLURM_JOB_ID: '12;rm', SLURMD_NODENAME: 'n1', BERTH_RUN_DIR: '/nonexistent' }, t, { tty: false });
    assert.equal(code, EXIT_BERTH_ERROR);
    assert.equal(t.err(), "berth exec: SLURM_JOB_ID: job id '12;rm' is not a Slurm job id: a job id is digits only, at most 20, as squeue shows it (e.g. 1234)\n");
  });

  it('a step hook refuses a malformed SLURM_STEP_ID as a node fault (Slurm gave it), naming the step', async () => {
    const lines: string[] = [];
    const env = { SLURM_JOB_ID: '5', SLURM_STEP_ID: '0;rm', SLURMD_NODENAME: 'n1', BERTH_RUN_DIR: '/nonexistent' };
    assert.equal(await runStepHook('step-prolog', env, (l) => lines.push(l)), 1);
    assert.deepEqual(lines, ["berth: job 5 step 0;rm on n1: SLURM_STEP_ID: step id '0;rm' is not a Slurm step id: a step id is digits or 'batch', as squeue --steps shows it after the job id and a dot (e.g. 1234.0)"]);
  });

  it("classes the hook's own refusal by its code, as the node's", () => {
    assert.deepEqual(hookFailure(new BerthError('INVALID_REQUEST', 'x')), { fault: 'node', code: 'INVALID_REQUEST' });
  });
});
