// Issue 14 (memory) through Slurm with task/cgroup: a process that needs more memory than the
// job holds on the node is stopped at the job's limit, in a berth exec step (by Slurm's job
// cgroup: the step's processes join its task's memory cgroup) and in a container step whose
// tasks Slurm launches (by Slurm's own step cgroup); sacct records the latter as
// OUT_OF_MEMORY, and berth's accounting records the berth exec step's peak at the limit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { accountingRecords, jobDir, jobIdFrom, jobState, readIfExists, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const LIMIT_MIB = 300;
/** dd's 500 MiB block buffer: more than the job's 300 MiB */
const HOG = 'dd if=/dev/zero of=/dev/null bs=500M count=1 2>/dev/null; echo hog=$?';

describe('memory: a job\'s containers stop at its memory', { timeout: 180_000 }, () => {
  it('stops a memory hog in a berth exec step and in a container step at the job\'s limit', () => {
    const dir = jobDir('alice', 'memory');
    const image = sandbox().demoImage;
    const script = [
      `srun berth exec -- sh -c '${HOG}'`,
      `srun --container-image=${image} --container-name=hog sh -c '${HOG}'`,
    ].join('\n');
    const sub = run('sbatch', ['-N1', '-c1', `--mem=${LIMIT_MIB}M`, '--no-container-batch', `--container-image=${image}`, '-o', `${dir}/out`, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    waitFor(`job ${jobId} ended`, () => jobState(jobId) === '' || undefined, 120_000);
    const out = readIfExists(`${dir}/out`);
    // SIGKILL by the kernel's OOM killer, in both
    assert.deepEqual(out.match(/hog=\d+/g), ['hog=137', 'hog=137'], out);
    const sacct = run('sacct', ['-n', '-P', '-j', `${jobId}.1`, '-o', 'State']).stdout.trim();
    assert.equal(sacct, 'OUT_OF_MEMORY', `sacct of the container step: ${sacct}`);
    const nodeName = run('sacct', ['-n', '-P', '-X', '-j', jobId, '-o', 'NodeList']).stdout.trim();
    const step0 = waitFor(`berth's record of step ${jobId}.0`, () => accountingRecords(nodeName).find((r) => r.JobID === jobId && r.RecordType === 'step' && r.StepID === '0'));
    const peak = Number(step0.MaxRSSBytes);
    assert.ok(peak > 0.9 * LIMIT_MIB * 2 ** 20 && peak <= LIMIT_MIB * 2 ** 20, `peak ${peak} bytes against the limit ${LIMIT_MIB} MiB`);
  });
});
