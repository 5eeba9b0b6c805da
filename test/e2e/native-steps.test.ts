// Container steps whose tasks the SPANK plugin launches natively: srun --container-image in a
// plain allocation and with another image than the job's (a step container, made at step
// start, gone at step end), --container-name to join the job's or a named container, the
// batch script in the job's container (--container-batch), and exit statuses in sacct.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { node, sandbox } from '../support/stack';
import { pushBusyboxImage } from '../support/images';
import { containersOfJob, jobDir, jobIdFrom, jobState, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const TOOLS = '127.0.0.1:5000/berth/tools:1';

function stepContainers(nodeName: string, jobId: string): string[] {
  const r = run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, 'ps', '-q', '--filter', `label=io.berth.job.id=${jobId}`, '--filter', 'label=io.berth.role=step']);
  return r.stdout.split('\n').filter(Boolean);
}

function sacctSteps(jobId: string): Record<string, string> {
  const out = run('sacct', ['-n', '-P', '-j', jobId, '-o', 'JobID,State,ExitCode']).stdout;
  return Object.fromEntries(out.trim().split('\n').filter(Boolean).map((l) => {
    const [id, state, exit] = l.split('|');
    return [id!, `${state} ${exit}`];
  }));
}

describe('container steps launched natively by the SPANK plugin', { timeout: 300_000 }, () => {
  const demo = sandbox().demoImage;
  before(() => pushBusyboxImage(TOOLS, { 'etc/berth-tools-release': 'berth tools image 1\n' }));

  it('runs srun --container-image in a plain allocation in a step container on every node, made at step start and gone at step end', () => {
    const dir = jobDir('alice', 'step-container');
    const out = path.join(dir, 'out.txt');
    const script = `srun -N2 --container-image=${TOOLS} sh -c 'echo "task=$SLURM_PROCID node=$SLURMD_NODENAME uid=$(id -u) release=$(cat /etc/berth-tools-release) self=$(test -d /proc/self/fd && echo ok)"; sleep 6'
echo "step-exit=$?"
test -f /etc/berth-tools-release && echo "batch-on-host=no" || echo "batch-on-host=yes"
sleep 8`;
    const sub = run('sbatch', ['-N2', '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    const nodes = waitFor('the job to run', () => (jobState(jobId) === 'RUNNING' ? run('squeue', ['-h', '-j', jobId, '-o', '%N']).stdout.trim() : undefined));
    const names = run('scontrol', ['show', 'hostnames', nodes]).stdout.trim().split('\n');
    for (const n of names) waitFor(`a step container of job ${jobId} on ${n}`, () => stepContainers(n, jobId).length === 1 || undefined);
    // berth containers lists each with its role (read from the engine by berth's labels)
    const listed = run('berth', ['containers', '--nodes', names.join(','), '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const doc = JSON.parse(listed.stdout) as { nodes: { node: string; result?: { containers: { kind: string; jobId: string; id: string }[] } }[] };
    for (const n of names) {
      const mine = doc.nodes.find((x) => x.node === n)?.result?.containers.filter((c) => c.jobId === jobId) ?? [];
      assert.deepEqual(mine.map((c) => c.kind), ['CONTAINER_KIND_STEP'], `berth containers on ${n}: ${listed.stdout}`);
      assert.ok(stepContainers(n, jobId)[0] && mine[0]!.id.startsWith(stepContainers(n, jobId)[0]!), 'the same container docker ps shows');
    }
    waitFor('the step to end', () => /step-exit=/.test(readFileSync(out, 'utf8')) || undefined, 60_000);
    assert.equal(jobState(jobId), 'RUNNING', 'the job goes on after the step');
    for (const n of names) waitFor(`the step container of job ${jobId} on ${n} removed at step end`, () => stepContainers(n, jobId).length === 0 || undefined, 20_000);
    waitFor('the job to end', () => jobState(jobId) === '' || undefined, 60_000);
    const text = readFileSync(out, 'utf8');
    const tasks = text.split('\n').filter((l) => l.startsWith('task='));
    assert.equal(tasks.length, 2, text);
    assert.deepEqual(tasks.map((l) => l.match(/node=(\S+)/)![1]).sort(), [...names].sort());
    for (const l of tasks) assert.match(l, /uid=\d+ release=berth tools image 1 self=ok$/);
    assert.match(text, /^step-exit=0$/m);
    assert.match(text, /^batch-on-host=yes$/m);
  });

  it('gives a step of a container job its own container when it names another image, and the job container when it names the job', () => {
    const dir = jobDir('alice', 'other-image');
    const out = path.join(dir, 'out.txt');
    const script = [
      `srun --container-image=${TOOLS} sh -c 'echo "other: $(cat /etc/berth-tools-release)"; test -f /etc/berth-demo-release || echo "other: no demo file"'`,
      `srun --container-name=box sh -c 'touch /tmp/in-job-container; echo "named: $(cat /etc/berth-demo-release)"'`,
      `srun berth exec -- sh -c 'test -f /tmp/in-job-container && echo "exec: same container"'`,
      `srun --container-name=box sh -c 'exit 3'; echo "failing-step=$?"`,
    ].join('\n');
    const sub = run('sbatch', ['-N1', '--wait', '--no-container-batch', `--container-image=${demo}`, '--container-name=box', '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(sub.code, 0, `${sub.stderr}\n${text}`);
    const jobId = jobIdFrom(sub.stdout);
    assert.match(text, /^other: berth tools image 1$/m);
    assert.match(text, /^other: no demo file$/m);
    assert.match(text, /^named: berth demo image 1\.0$/m);
    assert.match(text, /^exec: same container$/m);
    assert.match(text, /^failing-step=3$/m);
    const steps = waitFor('sacct to have the steps', () => {
      const s = sacctSteps(jobId);
      return s[`${jobId}.3`] ? s : undefined;
    });
    assert.equal(steps[`${jobId}.0`], 'COMPLETED 0:0');
    assert.equal(steps[`${jobId}.1`], 'COMPLETED 0:0');
    assert.equal(steps[`${jobId}.3`], 'FAILED 3:0');
    // berth's own accounting has the native steps too, with the command and how they ended
    const recs = waitFor('berth accounting to have the job', () => {
      const r = run('berth', ['accounting', '--nodes', 'n[1-3]', '--format', 'json', '--job', jobId, '--since', '1h']);
      const list = r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>[]) : [];
      return list.some((x) => x.RecordType === 'job') ? list : undefined;
    });
    const byStep = new Map(recs.filter((x) => x.RecordType === 'step').map((x) => [String(x.StepID), x]));
    assert.deepEqual([...byStep.keys()].sort(), ['0', '1', '2', '3'], JSON.stringify(recs));
    assert.equal(byStep.get('3')!.ExitCode, '3:0');
    assert.equal(byStep.get('3')!.State, 'FAILED');
    assert.equal(byStep.get('1')!.ExitCode, '0:0');
    assert.deepEqual(byStep.get('3')!.Argv, ['sh', '-c', 'exit 3']);
  });

  it('keeps a named step container for the later steps of the job, and says so when a name is unknown', () => {
    const dir = jobDir('alice', 'named');
    const out = path.join(dir, 'out.txt');
    const script = [
      `srun --container-image=${TOOLS} --container-name=tools sh -c 'echo kept > /tmp/note'`,
      `srun --container-name=tools cat /tmp/note`,
      `srun --container-name=nosuch true; echo "unknown-exit=$?"`,
    ].join('\n');
    const sub = run('sbatch', ['-N1', '--wait', '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(sub.code, 0, `${sub.stderr}\n${text}`);
    const jobId = jobIdFrom(sub.stdout);
    assert.match(text, /^kept$/m);
    assert.match(text, /job \d+ has no container named 'nosuch' on n\d; make it first with srun --container-image=IMAGE --container-name=nosuch/);
    assert.match(text, /^unknown-exit=[1-9]/m);
    for (const n of sandbox().nodes) waitFor(`no container of job ${jobId} left on ${n.name}`, () => containersOfJob(n.name, jobId).length === 0 || undefined);
  });

  it('runs the tasks of an srun of its own in the job container it made, with its mounts and working directory', () => {
    const dir = jobDir('alice', 'own-srun');
    const r = run('srun', ['-N1', `--container-image=${demo}`, `--container-mounts=${dir}:/data`, '--container-workdir=/data', 'sh', '-c', 'echo "pwd=$(pwd) release=$(cat /etc/berth-demo-release)"; touch /data/made-here; echo "role=$SLURM_JOB_ID"'],
      { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pwd=\/data release=berth demo image 1\.0$/m);
    assert.ok(readFileSync(path.join(dir, 'made-here'), 'utf8') === '', 'the task wrote through the mount');
    const jobId = r.stdout.match(/^role=(\d+)$/m)![1]!;
    const log = sandbox().nodes.map((n) => readFileSync(n.logs.berthd!, 'utf8')).join('');
    assert.doesNotMatch(log, new RegExp(`"job":"${jobId}".*step container started`), 'no step container: the job container has the options');
  });

  it('runs the batch script itself in the job container with --container-batch', () => {
    const dir = jobDir('alice', 'batch');
    const out = path.join(dir, 'out.txt');
    const sub = run('sbatch', ['-N1', '--wait', `--container-image=${demo}`, '--container-batch', '-o', out, '--wrap', 'echo "release=$(cat /etc/berth-demo-release) pwd=$(pwd) job=$SLURM_JOB_ID"; exit 4'],
      { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(sub.code, 4, `${sub.stderr}\n${text}`);
    const jobId = jobIdFrom(sub.stdout);
    assert.match(text, new RegExp(`^release=berth demo image 1\\.0 pwd=${dir.replace(/[.]/g, '\\.')} job=${jobId}$`, 'm'));
    const steps = waitFor('sacct to have the batch step', () => sacctSteps(jobId)[`${jobId}.batch`] ? sacctSteps(jobId) : undefined);
    assert.equal(steps[jobId], 'FAILED 4:0');
    assert.equal(steps[`${jobId}.batch`], 'FAILED 4:0');
  });
});
