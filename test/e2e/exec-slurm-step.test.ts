// Issue 14: a berth exec step's processes join the freezer cgroup of the Slurm step that ran
// it (the batch step for a berth exec in the script, step N for srun berth exec), so Slurm's
// proctrack/cgroup owns them: what a step leaves running in the container (a daemon in a
// session of its own, which berthd's signals to the step's process group do not reach) is
// killed by Slurm when the step ends. Their memory stays in berth's job cgroup: a hog is still
// stopped at the job's limit; scontrol suspend freezes them with the step. (sacct still does not count them: jobacct_gather/linux sums
// a task's descendants only; docs/operations.md, "CPU binding and cgroups".)
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { jobDir, jobIdFrom, jobNodes, jobState, readIfExists, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const LIMIT_MIB = 300;
/** 220 MiB held for a few seconds (dd's block buffer, filled again and again), then 500 MiB: past the limit */
const HOG = 'dd if=/dev/zero of=/dev/null bs=220M count=120 2>/dev/null; echo held=$?; dd if=/dev/zero of=/dev/null bs=500M count=1 2>/dev/null; echo hog=$?';

function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

describe('berth exec steps are their Slurm step\'s', { timeout: 180_000 }, () => {
  it('run in the freezer cgroup of the step that ran them, are ended with it, and stop at the job\'s memory', () => {
    const dir = jobDir('alice', 'exec-slurm-step');
    const script = [
      'berth exec -- cat /proc/self/cgroup > cg.batch',
      'srun berth exec -- cat /proc/self/cgroup > cg.step',
      // a daemon in its own session: berthd's group signals miss it, Slurm's step end does not
      "srun berth exec -- sh -c 'setsid sleep 301 </dev/null >/dev/null 2>&1 & echo left=$!' > left",
      'touch srun.done',
      'sleep 12',
      `berth exec -- sh -c '${HOG}'`,
    ].join('\n');
    const sub = run('sbatch', ['-N1', '-c1', `--mem=${LIMIT_MIB}M`, '--acctg-freq=task=1', `--container-image=${sandbox().demoImage}`, '-o', `${dir}/out`, '--wrap', script],
      { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    waitFor(`the srun steps of job ${jobId}`, () => existsSync(`${dir}/srun.done`) || jobState(jobId) === '' || undefined, 90_000);
    const node = jobNodes(jobId);
    const left = /left=(\d+)/.exec(readIfExists(`${dir}/left`))?.[1];
    assert.ok(left, `the daemon's pid: ${readIfExists(`${dir}/left`)} ${readIfExists(`${dir}/out`)}`);
    // the step has ended; slurmstepd kills what is left in its cgroup as it goes
    const gone = waitFor(`the daemon ${left} the step left to be gone`, () => (cmdline(left) !== 'sleep 301' ? true : undefined), 10_000);
    assert.equal(gone, true);
    waitFor(`job ${jobId} ended`, () => jobState(jobId) === '' || undefined, 120_000);

    const uid = run('id', ['-u', 'alice']).stdout.trim();
    const batch = readIfExists(`${dir}/cg.batch`);
    const step = readIfExists(`${dir}/cg.step`);
    assert.match(batch, new RegExp(`^\\d+:freezer:/slurm_${node}/uid_${uid}/job_${jobId}/step_batch$`, 'm'), batch);
    assert.match(step, new RegExp(`^\\d+:freezer:/slurm_${node}/uid_${uid}/job_${jobId}/step_0$`, 'm'), step);
    // every other controller stays berth's job cgroup
    for (const text of [batch, step]) {
      for (const c of ['memory', 'pids', 'cpuset']) assert.match(text, new RegExp(`^\\d+:[a-z_,]*\\b${c}\\b[a-z_,]*:/berth/${node}/job_${jobId}/`, 'm'), `${c}: ${text}`);
    }
    const out = readIfExists(`${dir}/out`);
    assert.match(out, /held=0/, out);
    assert.match(out, /hog=137/, `stopped by the job's memory limit: ${out}`);
  });

  it('are frozen by scontrol suspend with their step, and go on at resume', () => {
    const dir = jobDir('alice', 'exec-suspend');
    const loop = `i=0; while [ $i -lt 1200 ]; do i=$((i+1)); echo $i > ${dir}/count; sleep 0.05; done`;
    const sub = run('sbatch', ['-N1', '-c1', `--container-image=${sandbox().demoImage}`, '-o', `${dir}/out`, '--wrap', `berth exec -- sh -c '${loop}'`],
      { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    const count = (): number => Number(readIfExists(`${dir}/count`).trim() || 0);
    try {
      waitFor(`job ${jobId}'s berth exec counting`, () => (count() > 5 ? true : undefined), 60_000);
      assert.equal(run('scontrol', ['suspend', jobId]).code, 0);
      waitFor(`job ${jobId} suspended`, () => (jobState(jobId) === 'SUSPENDED' ? true : undefined), 10_000);
      // slurmd freezes the steps a moment after slurmctld says SUSPENDED: wait for the count to stand still for 2 s
      let last = count();
      let still = 0;
      const frozen = waitFor('the berth exec step to stop while its job is suspended (it kept counting)', () => {
        run('sleep', ['0.5']);
        const now = count();
        still = now === last ? still + 1 : 0;
        last = now;
        return still >= 4 ? now : undefined;
      }, 20_000);
      assert.equal(run('scontrol', ['resume', jobId]).code, 0);
      waitFor(`job ${jobId}'s berth exec going on`, () => (count() > frozen + 5 ? true : undefined), 10_000);
    } finally {
      run('scancel', [jobId]);
    }
  });
});
