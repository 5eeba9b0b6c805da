// scancel and the time limit reach the processes in the containers (SIGTERM first, SIGKILL
// after KillWait), and sacct shows the same states and exit codes for a container job as for
// the same job without containers.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { containersOfJob, jobDir, readIfExists, jobIdFrom, jobState, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';

/** JobID → "State ExitCode" from sacct, once it has every id in `want` */
function sacctOf(jobId: string, want: string[], timeoutMs: number): Record<string, string> {
  return waitFor(`sacct to show ${want.join(', ')}`, () => {
    const out = run('sacct', ['-n', '-P', '-j', jobId, '-o', 'JobID,State,ExitCode']).stdout;
    const rows = Object.fromEntries(out.trim().split('\n').filter(Boolean).map((l) => {
      const [id, state, exit] = l.split('|');
      return [id!.replace(jobId, 'JOB'), `${state!.replace(/ by \d+$/, '')} ${exit}`];
    }));
    return want.every((w) => rows[w] && !/RUNNING|PENDING/.test(rows[w]!)) ? rows : undefined;
  }, timeoutMs);
}

/**
 * What must match between the two: the job and its step exactly; the batch step's state. The
 * batch shell's own exit (0:0 or 0:15) depends on whether Slurm's SIGTERM reached it before
 * its srun returned, a race of the host shell's, with or without containers.
 */
function comparable(rows: Record<string, string>): Record<string, string> {
  return { JOB: rows.JOB!, 'JOB.0': rows['JOB.0']!, 'JOB.batch': rows['JOB.batch']!.split(' ')[0]! };
}

/** submits the same step with and without a container, waits for `ready` in both outputs, then acts on both jobs */
function sideBySide(name: string, step: string, sbatchArgs: string[], act: (jobIds: string[]) => void, endsWithinMs = 60_000): { plain: Record<string, string>; container: Record<string, string>; outs: string[]; jobIds: string[]; dir: string } {
  const dir = jobDir('alice', name);
  const image = sandbox().demoImage;
  const runs = [[], ['--no-container-batch', `--container-image=${image}`]].map((extra, i) => {
    const out = path.join(dir, `out-${i}.txt`);
    const srun = i === 0 ? 'srun' : `srun --container-image=${image}`;
    const sub = run('sbatch', ['-N1', ...sbatchArgs, ...extra, '-o', out, '--wrap', `${srun} sh -c '${step}'`], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    return { jobId: jobIdFrom(sub.stdout), out };
  });
  for (const r of runs) waitFor(`job ${r.jobId} ready`, () => (readIfExists(r.out).includes('ready') || undefined), 90_000);
  act(runs.map((r) => r.jobId));
  const want = ['JOB', 'JOB.batch', 'JOB.0'];
  const [plain, container] = runs.map((r) => sacctOf(r.jobId, want, endsWithinMs));
  for (const r of runs) waitFor(`job ${r.jobId} gone`, () => jobState(r.jobId) === '' || undefined, 60_000);
  return { plain: plain!, container: container!, outs: runs.map((r) => readFileSync(r.out, 'utf8')), jobIds: runs.map((r) => r.jobId), dir };
}

describe('signals and limits through Slurm', { timeout: 300_000 }, () => {
  // the trap leaves a file as well as a line: with proctrack/cgroup Slurm signals srun in the
  // batch step at the same moment as the step's tasks, and srun may stop forwarding the step's
  // output before the trap's line reaches it (seen without containers too)
  const trapping = 'trap "echo got-TERM > trapped.$SLURM_JOB_ID; echo got-TERM; exit 143" TERM; echo ready; sleep 300 & wait';
  const trapped = (r: { dir: string; jobIds: string[] }) => r.jobIds.map((id) => existsSync(path.join(r.dir, `trapped.${id}`)));

  it('scancel: SIGTERM reaches the step in the container, and sacct matches the job without containers', () => {
    const r = sideBySide('scancel', trapping, [], (ids) => {
      for (const id of ids) assert.equal(run('scancel', [id], { user: 'alice' }).code, 0);
    });
    assert.deepEqual(trapped(r), [true, true], `the trap ran in both jobs: SIGTERM came first (${r.outs.join(' | ')})`);
    assert.deepEqual(comparable(r.container), comparable(r.plain));
    assert.match(r.container.JOB!, /^CANCELLED/);
    for (const id of r.jobIds) for (const n of sandbox().nodes) waitFor(`no container of job ${id} on ${n.name}`, () => containersOfJob(n.name, id).length === 0 || undefined);
  });

  it('a process that ignores SIGTERM is killed after KillWait, as without containers', () => {
    let cancelledAt = 0;
    const r = sideBySide('killwait', 'trap "" TERM; echo ready; while :; do sleep 1; done', [], (ids) => {
      cancelledAt = Math.floor(Date.now() / 1000);
      for (const id of ids) run('scancel', [id], { user: 'alice' });
    });
    assert.deepEqual(comparable(r.container), comparable(r.plain));
    assert.match(r.container['JOB.0']!, /^CANCELLED/);
    // the step outlived SIGTERM until SIGKILL came, KillWait (5 s) later, in both jobs
    for (const id of r.jobIds) {
      const end = run('sacct', ['-n', '-P', '-j', `${id}.0`, '-o', 'End']).stdout.trim();
      const lived = Date.parse(end) / 1000 - cancelledAt;
      assert.ok(lived >= 4, `step ${id}.0 ended ${lived} s after scancel (${end})`);
    }
  });

  it('the time limit ends the job as TIMEOUT, with the same sacct as without containers', { timeout: 240_000 }, () => {
    // slurmctld checks time limits every 30 s: the jobs end 60 to 90 s after they start
    const r = sideBySide('timeout', trapping, ['-t', '1'], () => undefined, 150_000);
    // the job is TIMEOUT in both. Its steps race Slurm's own kill: slurmctld signals the batch
    // step and step 0 at once, and which one slurmd records first (step 0 TIMEOUT or FAILED
    // after its trap's exit, the batch step FAILED or CANCELLED) varies from run to run with
    // and without containers alike (seen in both), so each must be one of the states that race gives
    for (const rows of [r.plain, r.container]) {
      assert.match(rows.JOB!, /^TIMEOUT/);
      assert.match(rows['JOB.0']!, /^(TIMEOUT|FAILED|CANCELLED)\b/, JSON.stringify(rows));
      assert.match(rows['JOB.batch']!, /^(TIMEOUT|FAILED|CANCELLED)\b/, JSON.stringify(rows));
    }
    assert.equal(r.container.JOB, r.plain.JOB);
    assert.deepEqual(trapped(r), [true, true], `the trap ran in both jobs (${r.outs.join(' | ')})`);
  });
});
