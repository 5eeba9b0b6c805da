// A tag moved while a job runs does not change what the job's later steps run: the job was
// pinned to the digest at submit, and every node runs that digest, and so does a step that
// names the job's image again (`srun --container-image=TAG` in the job: the plugin takes the
// job's pinned digest without asking the registry).
import assert from 'node:assert/strict';
import { chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pushBusyboxImage } from '../support/images';
import { jobDir, jobIdFrom, jobState, run, waitFor } from '../support/slurm';

const TAG = '127.0.0.1:5000/berth/moving:1';

function pushImage(marker: string): void {
  pushBusyboxImage(TAG, { 'etc/marker': `${marker}\n` });
}

describe('a tag moved during a job', { timeout: 180_000 }, () => {
  it("does not change what the job's later steps run, nor a step naming the job's image", () => {
    pushImage('v1');
    const dir = jobDir('alice', 'tag-moved');
    const flag = path.join(dir, 'moved');
    const out = path.join(dir, 'out.txt');
    const script = `srun berth exec -- cat /etc/marker; while [ ! -f ${flag} ]; do sleep 0.2; done; srun berth exec -- cat /etc/marker; srun --container-image=${TAG} cat /etc/marker`;
    const sub = run('sbatch', ['-N1', '-w', 'n2', '--no-container-batch', `--container-image=${TAG}`, '-o', out, '--wrap', script], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    waitFor('the first step', () => (existsSync(out) && readFileSync(out, 'utf8').includes('v1')) || undefined, 60_000);
    pushImage('v2');
    writeFileSync(flag, '');
    chownSync(flag, 2001, 2001);
    waitFor(`job ${jobId} to end`, () => jobState(jobId) === '' || undefined, 60_000);
    assert.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), ['v1', 'v1', 'v1']);
    // and the tag did move: a new job gets v2
    const now = run('srun', ['-N1', '-w', 'n2', `--container-image=${TAG}`, 'berth', 'exec', '--', 'cat', '/etc/marker'], { user: 'alice', cwd: dir });
    assert.equal(now.code, 0, now.stderr);
    assert.equal(now.stdout.trim(), 'v2');
  });
});
