// Each array task gets a container of its own, and two jobs of one user on one node never see
// each other's; a requeued job starts in a clean container.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { containersOfJob, jobDir, readIfExists, jobIdFrom, jobState, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';

describe('arrays and requeue through Slurm', { timeout: 420_000 }, () => {
  const image = sandbox().demoImage;

  it('gives each array task its own container, unseen by the others on the same node', () => {
    const dir = jobDir('alice', 'array');
    // all on n1, two at a time (two CPUs), each leaving a file in its container's /tmp
    const script = 'touch /tmp/mine-$SLURM_ARRAY_TASK_ID; sleep 4; echo "task=$SLURM_ARRAY_TASK_ID job=$SLURM_JOB_ID sees=$(echo $(ls /tmp | grep mine-))"';
    const sub = run('sbatch', ['-N1', '-n1', '-w', 'n1', '--array=1-3', '--wait', `--container-image=${image}`, '--container-batch', '-o', path.join(dir, 'out-%a.txt'), '--wrap', script],
      { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    assert.equal(sub.code, 0, sub.stderr);
    const arrayId = jobIdFrom(sub.stdout);
    const lines = readdirSync(dir).filter((f) => f.startsWith('out-')).map((f) => readFileSync(path.join(dir, f), 'utf8').trim());
    assert.equal(lines.length, 3, lines.join('\n'));
    const jobs = new Set<string>();
    for (const l of lines) {
      const m = l.match(/^task=(\d) job=(\d+) sees=(.*)$/);
      assert.ok(m, l);
      assert.equal(m[3]!.trim(), `mine-${m[1]}`, `task ${m[1]} sees only its own file: ${l}`);
      jobs.add(m[2]!);
    }
    assert.equal(jobs.size, 3, 'three jobs, three containers');
    for (const id of [...jobs, arrayId]) waitFor(`no container of job ${id} left on n1`, () => containersOfJob('n1', id).length === 0 || undefined);
  });

  it('starts a requeued job in a clean container', () => {
    const dir = jobDir('alice', 'requeue');
    const out = path.join(dir, 'out.txt');
    const script = 'if [ -f /tmp/was-here ]; then echo "run=$SLURM_RESTART_COUNT dirty"; else echo "run=${SLURM_RESTART_COUNT:-0} clean"; fi; touch /tmp/was-here; echo ready; sleep 60';
    const sub = run('sbatch', ['-N1', '--requeue', '--open-mode=append', `--container-image=${image}`, '--container-batch', '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    waitFor('the first run', () => readIfExists(out).includes('ready') || undefined, 90_000);
    assert.equal(run('scontrol', ['requeue', jobId]).code, 0);
    // Slurm holds a requeued job back (BeginTime, about two minutes, until the old job
    // credential has expired); started earlier by hand, slurmd would launch it without its prolog
    waitFor('the second run', () => /run=1/.test(readFileSync(out, 'utf8')) || undefined, 240_000);
    run('scancel', [jobId]);
    waitFor('the job to end', () => jobState(jobId) === '' || undefined, 60_000);
    const text = readFileSync(out, 'utf8');
    assert.match(text, /^run=0 clean$/m);
    assert.match(text, /^run=1 clean$/m);
    assert.doesNotMatch(text, /dirty/);
    for (const n of sandbox().nodes) waitFor(`no container of job ${jobId} left on ${n.name}`, () => containersOfJob(n.name, jobId).length === 0 || undefined);
  });
});
