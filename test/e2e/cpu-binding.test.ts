// Issue 14 (CPUs) through Slurm with task/cgroup and task/affinity: every container of a job —
// its job container, an exec in it, a step container, the user's own `docker run` — and its
// native steps run on exactly the CPUs Slurm gave the job on that node, and two jobs sharing a
// node never see each other's CPUs.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { accountingRecords, containersOfJob, dockerOnNode, jobDir, jobIdFrom, jobNodes, jobState, run, runningContainerJob, waitFor } from '../support/slurm';
import { CpuTopology } from '../../services/agent/runtime/cpu-topology';
import { parseJobDetail } from '../../services/agent/jobs/slurm-allocation';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const SHOW_CPUS = 'grep Cpus_allowed_list /proc/self/status | cut -f2';
const topology = new CpuTopology();

/** The job's CPUs on the node as Linux numbers them, from Slurm's own CPU_IDs. */
function slurmCpus(jobId: string, nodeName: string): string {
  const r = run('scontrol', ['show', 'job', '-d', '-o', jobId]);
  assert.equal(r.code, 0, r.stderr);
  const alloc = parseJobDetail(r.stdout, nodeName);
  assert.ok(alloc?.cpuIds, `no CPU_IDs for job ${jobId} on ${nodeName}: ${r.stdout}`);
  return topology.machineCpus(alloc.cpuIds);
}

describe('CPU binding: containers and steps on exactly the job\'s CPUs', { timeout: 240_000 }, () => {
  const cancel: string[] = [];
  after(() => {
    for (const id of cancel) run('scancel', [id]);
  });

  it('gives two 1-CPU jobs on one node disjoint CPUs, the same in every container and step of each', () => {
    const onNode = 'n1';
    const a = runningContainerJob('alice', 'cpus', onNode);
    cancel.push(a.jobId);
    const b = runningContainerJob('bob', 'cpus', onNode);
    cancel.push(b.jobId);
    const cpusA = slurmCpus(a.jobId, onNode);
    const cpusB = slurmCpus(b.jobId, onNode);
    assert.notEqual(cpusA, cpusB, 'Slurm gave both jobs the same CPU');

    for (const [job, cpus, user] of [[a, cpusA, 'alice'], [b, cpusB, 'bob']] as const) {
      // the job container's own processes, and an exec in it
      const init = dockerOnNode(onNode, ['exec', job.container, 'sh', '-c', SHOW_CPUS]);
      assert.equal(init.code, 0, init.stderr);
      assert.equal(init.stdout.trim(), cpus, `job ${job.jobId}'s container`);
      // a step of the job on the host, and a berth exec step in its container
      for (const argv of [['sh', '-c', SHOW_CPUS], ['berth', 'exec', '--', 'sh', '-c', SHOW_CPUS]]) {
        const step = run('srun', ['--jobid', job.jobId, '--overlap', '-n1', ...argv], { user, cwd: job.dir, env: { PATH } });
        assert.equal(step.code, 0, step.stderr);
        assert.equal(step.stdout.trim(), cpus, `${argv[0]} step of job ${job.jobId}`);
      }
      // the user's own docker run through the job's Docker endpoint
      const uid = run('id', ['-u', user]).stdout.trim();
      const env = { PATH, DOCKER_HOST: `unix:///run/berth/${onNode}/jobs/${job.jobId}.docker.sock`, HOME: `/home/${user}` };
      const allowed = ['--user', `${uid}:${uid}`, '--network', 'host', '--security-opt', 'no-new-privileges', '--memory', '500m', '--memory-swap', '500m', '--cpus', '1'];
      const own = run('docker', ['run', '--rm', ...allowed, sandbox().demoImage, 'sh', '-c', SHOW_CPUS], { user, env });
      assert.equal(own.code, 0, own.stderr);
      assert.equal(own.stdout.trim(), cpus, `${user}'s docker run in job ${job.jobId}`);
      // asking for the other job's CPU is refused, whatever the request said
      const other = job === a ? cpusB : cpusA;
      const beyond = run('docker', ['run', '--rm', ...allowed, '--cpuset-cpus', other, sandbox().demoImage, 'true'], { user, env });
      assert.notEqual(beyond.code, 0, `${user} ran on job ${job === a ? b.jobId : a.jobId}'s CPU ${other}`);
      assert.match(beyond.stderr, new RegExp(`CPUs ${other}.*job ${job.jobId} holds CPUs ${cpus}|CpusetCpus`), beyond.stderr);
    }
    // the accounting record of each job container names its CPUs
    for (const job of [a, b]) assert.equal(run('scancel', [job.jobId]).code, 0);
    for (const [job, cpus] of [[a, cpusA], [b, cpusB]] as const) {
      const rec = waitFor(`job record of ${job.jobId}`, () => accountingRecords(onNode).find((r) => r.JobID === job.jobId && r.RecordType === 'job'));
      assert.equal(rec.CPUSet, cpus);
      assert.deepEqual(rec.GPUs, []);
    }
  });

  it('runs a step container in a plain allocation on the job\'s CPUs', () => {
    const onNode = 'n2';
    const dir = jobDir('alice', 'cpus-step');
    const sub = run('sbatch', ['-N1', '-w', onNode, '-c1', '-o', `${dir}/out`, '--wrap', `srun --container-image=${sandbox().demoImage} sh -c '${SHOW_CPUS}; sleep 60'`], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    cancel.push(jobId);
    waitFor(`job ${jobId} running`, () => jobState(jobId) === 'RUNNING' || undefined);
    const cpus = slurmCpus(jobId, onNode);
    const out = waitFor(`output of job ${jobId}`, () => run('cat', [`${dir}/out`]).stdout.trim() || undefined);
    // the step's tasks (launched by Slurm, so bound by task/affinity too)
    assert.equal(out, cpus);
    assert.equal(jobNodes(jobId), onNode);
    // and the step container itself, which dockerd started
    const container = waitFor(`step container of job ${jobId}`, () => containersOfJob(onNode, jobId, 'running')[0]);
    const inside = dockerOnNode(onNode, ['exec', container, 'sh', '-c', SHOW_CPUS]);
    assert.equal(inside.code, 0, inside.stderr);
    assert.equal(inside.stdout.trim(), cpus, 'the step container');
  });
});
