// Issue 14: a berth exec step's processes join the Slurm step and task that ran it (the batch
// step for a berth exec in the script, step N for srun berth exec): the step's freezer cgroup,
// so Slurm's proctrack/cgroup owns them — what a step leaves running in the container (a
// daemon in a session of its own, which berthd's signals to the step's process group do not
// reach) is killed by Slurm when the step ends, scontrol suspend freezes them — and the task's
// memory and cpuacct cgroups, so jobacct_gather/cgroup counts them in sacct and the job's
// Slurm memory limit stops a hog. pids, cpuset and devices stay berth's (docs/operations.md,
// "CPU binding and cgroups").
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { accountingRecords, jobDir, jobIdFrom, jobNodes, jobState, readIfExists, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const LIMIT_MIB = 300;
/** MIB held for a few seconds (dd's block buffer, filled from /dev/zero again and again: every page touched) */
const hold = (mib: number): string => `dd if=/dev/zero of=/dev/null bs=${mib}M count=120 2>/dev/null; echo held=$?`;
/** 180 MiB held (beside the berth client's ~60 MB in the same Slurm job), then 500 MiB: past the limit */
const HOG = `${hold(180)}; dd if=/dev/zero of=/dev/null bs=500M count=1 2>/dev/null; echo hog=$?`;
/** about 3 s of CPU in busybox sh */
const BURN = 'i=0; while [ $i -lt 2500000 ]; do i=$((i+1)); done; echo burnt';

/** JOBID.STEP → {MaxRSS in bytes, TotalCPU in seconds, State} from sacct */
function sacctUsage(jobId: string): Map<string, { maxRss: number; totalCpu: number; state: string }> {
  const out = run('sacct', ['-n', '-P', '--noconvert', '-j', jobId, '-o', 'JobID,MaxRSS,TotalCPU,State']).stdout;
  const rows = new Map<string, { maxRss: number; totalCpu: number; state: string }>();
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [id = '', rss = '', cpu = '', state = ''] = line.split('|');
    rows.set(id, { maxRss: Number(rss.replace(/[^0-9]/g, '') || 0), totalCpu: cpuSeconds(cpu), state });
  }
  return rows;
}

/** sacct's [DD-][HH:]MM:SS[.mmm] as seconds */
function cpuSeconds(text: string): number {
  const [days, rest] = text.includes('-') ? text.split('-') as [string, string] : ['0', text];
  return rest.split(':').reduce((acc, p) => acc * 60 + Number(p), 0) + Number(days) * 86_400;
}

function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

describe('berth exec steps are their Slurm step\'s', { timeout: 180_000 }, () => {
  it('run in the freezer cgroup of the step that ran them and the memory and cpuacct cgroups of its task, are ended with it, and stop at the job\'s Slurm memory limit', () => {
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
    const sub = run('sbatch', ['-N1', '-c1', `--mem=${LIMIT_MIB}M`, '--acctg-freq=task=1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', `${dir}/out`, '--wrap', script],
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
    // memory and cpuacct: the task's of the berth exec client (task_0 of its step)
    for (const c of ['memory', 'cpuacct']) {
      assert.match(batch, new RegExp(`^\\d+:[a-z_,]*\\b${c}\\b[a-z_,]*:/slurm_${node}/uid_${uid}/job_${jobId}/step_batch/task_0$`, 'm'), `${c}: ${batch}`);
      assert.match(step, new RegExp(`^\\d+:[a-z_,]*\\b${c}\\b[a-z_,]*:/slurm_${node}/uid_${uid}/job_${jobId}/step_0/task_0$`, 'm'), `${c}: ${step}`);
    }
    // every other controller stays berth's job cgroup: the job's CPUs, its process limit, the container's devices
    for (const text of [batch, step]) {
      for (const c of ['pids', 'cpuset', 'devices']) assert.match(text, new RegExp(`^\\d+:[a-z_,]*\\b${c}\\b[a-z_,]*:/berth/${node}/job_${jobId}/`, 'm'), `${c}: ${text}`);
    }
    const out = readIfExists(`${dir}/out`);
    assert.match(out, /held=0/, out);
    assert.match(out, /hog=137/, `stopped by the job's memory limit: ${out}`);
    // Slurm's own OOM notice reaches the user, and sacct says why the step ended
    assert.match(out, /oom-kill event/, out);
    const usage = waitFor(`sacct of ${jobId}.batch`, () => sacctUsage(jobId).get(`${jobId}.batch`));
    assert.equal(usage.state, 'OUT_OF_MEMORY', JSON.stringify(usage));
  });

  it('are counted by sacct: a memory hog\'s MaxRSS and a CPU burner\'s TotalCPU', (t) => {
    const dir = jobDir('alice', 'exec-sacct');
    const script = [
      `berth exec -- sh -c '${hold(250)}'`,
      `srun berth exec -- sh -c '${BURN}'`,
    ].join('\n');
    const sub = run('sbatch', ['-N1', '-c1', '--mem=400M', '--acctg-freq=task=1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', `${dir}/out`, '--wrap', script],
      { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    waitFor(`job ${jobId} ended`, () => jobState(jobId) === '' || undefined, 120_000);
    const out = readIfExists(`${dir}/out`);
    assert.match(out, /held=0/, out);
    assert.match(out, /burnt/, out);
    const rows = waitFor(`sacct of ${jobId}'s steps`, () => {
      const r = sacctUsage(jobId);
      return r.has(`${jobId}.batch`) && r.has(`${jobId}.0`) ? r : undefined;
    });
    const batch = rows.get(`${jobId}.batch`)!;
    const step = rows.get(`${jobId}.0`)!;
    t.diagnostic(`sacct: ${jobId}.batch MaxRSS ${batch.maxRss} B TotalCPU ${batch.totalCpu} s; ${jobId}.0 MaxRSS ${step.maxRss} B TotalCPU ${step.totalCpu} s`);
    // before, sacct saw the berth client only: MaxRSS 57 MB, TotalCPU 0.16 s
    assert.ok(batch.maxRss >= 200 * 2 ** 20, `MaxRSS of ${jobId}.batch: ${batch.maxRss} bytes (the 250 MiB hog's)`);
    assert.ok(step.totalCpu >= 1.5, `TotalCPU of ${jobId}.0: ${step.totalCpu} s (the burner's)`);
    // berth's own record of the steps follows them into Slurm's cgroups
    const nodeName = run('sacct', ['-n', '-P', '-X', '-j', jobId, '-o', 'NodeList']).stdout.trim();
    const recs = waitFor(`berth's records of job ${jobId}`, () => {
      const r = accountingRecords(nodeName).filter((x) => x.JobID === jobId);
      return r.some((x) => x.RecordType === 'job') ? r : undefined;
    });
    const hogRec = recs.find((r) => r.RecordType === 'step' && r.StepID === '')!;
    const burnRec = recs.find((r) => r.RecordType === 'step' && r.StepID === '0')!;
    assert.ok(Number(hogRec.MaxRSSBytes) >= 200 * 2 ** 20, `berth's MaxRSSBytes of the hog: ${hogRec.MaxRSSBytes}`);
    assert.ok(Number(burnRec.TotalCPUSeconds) >= 1.5, `berth's TotalCPUSeconds of the burner: ${burnRec.TotalCPUSeconds}`);
    const jobRec = recs.find((r) => r.RecordType === 'job')!;
    t.diagnostic(`berth: hog ${hogRec.MaxRSSBytes} B ${hogRec.TotalCPUSeconds} s; burner ${burnRec.MaxRSSBytes} B ${burnRec.TotalCPUSeconds} s; job ${jobRec.MaxRSSBytes} B ${jobRec.TotalCPUSeconds} s`);
    assert.ok(Number(jobRec.TotalCPUSeconds) >= Number(burnRec.TotalCPUSeconds), `job CPU ${jobRec.TotalCPUSeconds} s includes the step's`);
  });

  it('are frozen by scontrol suspend with their step, and go on at resume', () => {
    const dir = jobDir('alice', 'exec-suspend');
    const loop = `i=0; while [ $i -lt 1200 ]; do i=$((i+1)); echo $i > ${dir}/count; sleep 0.05; done`;
    const sub = run('sbatch', ['-N1', '-c1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', `${dir}/out`, '--wrap', `berth exec -- sh -c '${loop}'`],
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
