// What users see when berth refuses: another user's job, a job without a container, a
// missing image (the prolog fails, slurmd logs why), outside an allocation.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { node, sandbox } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, jobNodes, jobState, resumeNodes, run, waitFor } from '../support/slurm';

describe('berth refusals through Slurm', { timeout: 240_000 }, () => {
  const cancel: string[] = [];
  after(() => {
    for (const id of cancel) run('scancel', [id]);
    resumeNodes();
  });

  it("refuses berth exec into another user's job, naming why", () => {
    const dir = jobDir('alice', 'owned');
    const sub = run('sbatch', ['-N1', `--container-image=${sandbox().demoImage}`, '-o', '/dev/null', '--wrap', 'sleep 120'], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    cancel.push(jobId);
    // a job shows RUNNING while its prolog still runs (Reason=Prolog): wait for its container
    waitFor(`job ${jobId} running`, () => jobState(jobId) === 'RUNNING' || undefined);
    const nodeName = jobNodes(jobId);
    const [container] = waitFor(`container of job ${jobId}`, () => {
      const ids = containersOfJob(nodeName, jobId, 'running');
      return ids.length ? ids : undefined;
    });
    const limits = JSON.parse(run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, 'inspect', '--format', '{{json .HostConfig}}', container!]).stdout) as { Memory: number; NanoCpus: number };
    const detail = run('scontrol', ['show', 'job', '-d', '-o', jobId]).stdout;
    const memMb = Number(detail.match(/ Mem=(\d+)/)![1]);
    assert.equal(limits.Memory, memMb * 1024 * 1024, 'memory limited to the allocation slurmctld reports');
    assert.equal(limits.NanoCpus, 1_000_000_000, 'one CPU allocated, one CPU of quota');
    const mine = run('berth', ['exec', '--', 'id', '-un'], { user: 'alice', cwd: dir, env: { SLURM_JOB_ID: jobId, SLURMD_NODENAME: nodeName, PATH: '/usr/local/bin:/usr/bin:/bin' } });
    assert.equal(mine.code, 0, mine.stderr);
    assert.equal(mine.stdout.trim(), 'alice');
    const fds = (): number => readdirSync(`/proc/${readFileSync(`/run/berth-sandbox/${nodeName}/berthd.pid`, 'utf8').trim()}/fd`).length;
    const fdsBefore = fds();
    for (let i = 0; i < 8; i++) assert.equal(run('berth', ['exec', '--', 'true'], { user: 'alice', cwd: dir, env: { SLURM_JOB_ID: jobId, SLURMD_NODENAME: nodeName, PATH: '/usr/local/bin:/usr/bin:/bin' } }).code, 0);
    assert.ok(fds() <= fdsBefore + 2, `berthd keeps no connection per step: ${fdsBefore} open files before 8 steps, ${fds()} after`);
    const elsewhere = run('berth', ['exec', '--', 'id'], { user: 'alice', cwd: '/usr/share', env: { SLURM_JOB_ID: jobId, SLURMD_NODENAME: nodeName, PATH: '/usr/local/bin:/usr/bin:/bin' } });
    assert.equal(elsewhere.code, 125);
    assert.match(elsewhere.stderr, /the current directory \/usr\/share does not exist in the container of job \d+: cd into the job's working directory/);
    const theirs = run('berth', ['exec', '--', 'id'], { user: 'bob', env: { SLURM_JOB_ID: jobId, SLURMD_NODENAME: nodeName, PATH: '/usr/local/bin:/usr/bin:/bin' } });
    assert.equal(theirs.code, 125);
    assert.match(theirs.stderr, new RegExp(`berth exec: job ${jobId} on ${nodeName} belongs to another user`));
    run('scancel', [jobId]);
    waitFor(`job ${jobId} gone`, () => jobState(jobId) === '' || undefined);
    waitFor(`containers of ${jobId} removed`, () => containersOfJob(nodeName, jobId).length === 0 || undefined);
  });

  it('tells the user when the job has no container', () => {
    const dir = jobDir('alice', 'nocontainer');
    const sub = run('sbatch', ['-N1', '--wait', '-o', path.join(dir, 'out.txt'), '--wrap', 'srun berth exec -- id'], { user: 'alice', cwd: dir });
    const out = readFileSync(path.join(dir, 'out.txt'), 'utf8');
    assert.notEqual(sub.code, 0);
    assert.match(out, /berth exec: job \d+ has no container on node n\d: berth exec needs a job submitted with --container-image/);
  });

  it('refuses berth exec outside an allocation', () => {
    const r = run('berth', ['exec', '--', 'id'], { user: 'alice', env: { PATH: '/usr/local/bin:/usr/bin:/bin' } });
    assert.equal(r.code, 125);
    assert.match(r.stderr, /not inside a Slurm allocation/);
  });

  it('fails the submission of a job whose image is missing or malformed, in the user\'s terminal, and drains nothing', () => {
    const dir = jobDir('alice', 'missing');
    const missing = run('sbatch', ['-N1', '--container-image=127.0.0.1:5000/berth/no-such-image:1', '-o', '/dev/null', '--wrap', 'true'], { user: 'alice', cwd: dir });
    assert.notEqual(missing.code, 0);
    assert.doesNotMatch(missing.stdout, /Submitted batch job/);
    assert.match(missing.stderr, /image '127\.0\.0\.1:5000\/berth\/no-such-image:1' was not found in registry 127\.0\.0\.1:5000 \(manifest unknown, HTTP 404\); check the name and tag/);
    const malformed = run('srun', ['-N1', '--container-image=127.0.0.1:5000/Berth:x y', 'true'], { user: 'alice', cwd: dir });
    assert.notEqual(malformed.code, 0);
    assert.match(malformed.stderr, /image reference .* is malformed/);
    const drained = run('sinfo', ['-h', '-t', 'drain', '-o', '%N']).stdout.trim();
    assert.equal(drained, '', 'no node drained');
  });

  it('pins the image to its digest at submit: the job runs exactly that digest', () => {
    const dir = jobDir('alice', 'pinned');
    const out = path.join(dir, 'out.txt');
    const sub = run('sbatch', ['-N1', '--wait', `--container-image=${sandbox().demoImage}`, '-o', out, '--wrap', 'echo "image=$SLURM_SPANK_BERTH_CONTAINER_IMAGE"'], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const pinned = run('berth', ['resolve', sandbox().demoImage]).stdout.trim();
    assert.match(pinned, /^127\.0\.0\.1:5000\/berth\/demo@sha256:[a-f0-9]{64}$/);
    assert.match(readFileSync(out, 'utf8'), new RegExp(`^image=${pinned.replace(/[.]/g, '\\.')}$`, 'm'));
  });
});
