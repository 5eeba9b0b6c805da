// A job waiting on a long image pull says so where its user reads about the job
// (AdminComment: scontrol show job, squeue -O admincomment, sacct), and how long it took.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { forgetImage, pushPaddedImage } from '../support/images';
import { node } from '../support/stack';
import { jobDir, jobIdFrom, jobState, run, waitFor } from '../support/slurm';

const TAG = '127.0.0.1:5000/berth/pull-notice:2';
const NODE = 'n1';

function adminComment(jobId: string): string {
  const line = run('scontrol', ['show', 'job', '-o', jobId]).stdout;
  return (/AdminComment=(.*?)(?: [A-Z][A-Za-z]*=|$)/.exec(line.trim())?.[1] ?? '').trim();
}

describe('a long image pull at the prolog', { timeout: 300_000 }, () => {
  after(() => forgetImage(node(NODE).dockerSocket, '127.0.0.1:5000/berth/pull-notice'));

  it("is told to the job's user as it goes, and how long it took", async () => {
    await pushPaddedImage(TAG, 500);
    forgetImage(node(NODE).dockerSocket, '127.0.0.1:5000/berth/pull-notice');
    const dir = jobDir('alice', 'pull-notice');
    const sub = run('sbatch', ['-N1', '-w', NODE, `--container-image=${TAG}`, '-o', '/dev/null', '--wrap', 'sleep 2'], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    const seen = new Set<string>();
    waitFor(`job ${jobId} to end`, () => {
      const c = adminComment(jobId);
      if (c) seen.add(c);
      return jobState(jobId) === '' || undefined;
    }, 240_000);
    const lines = [...seen];
    assert.ok(lines.some((l) => new RegExp(`^berth: pulling ${TAG.replaceAll('.', '\\.')} on ${NODE}: \\d+ % \\(\\d+ of \\d+ MB, \\d+ of \\d+ layers done\\)$`).test(l)), lines.join('\n'));
    const final = run('sacct', ['-j', jobId, '-X', '-n', '-P', '-o', 'AdminComment']).stdout.trim();
    assert.match(final, new RegExp(`^berth: pulled ${TAG.replaceAll('.', '\\.')} on ${NODE} in \\d+ s$`));
  });
});
