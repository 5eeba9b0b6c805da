// Issue 14 (GPUs and RDMA) through Slurm, with the sandbox's fake device nodes
// (scripts/sandbox.d/devices.sh: NVIDIA GPUs on n1 and n2, AMD GPUs on n3, two HCAs on n1):
// a job's containers — its job container, a step in it, the user's own `docker run`, a step
// container's natively launched tasks — see exactly the GPUs Slurm gave the job on that node
// and the node's HCAs, with the visible-devices variables Slurm sets; a job without GPUs sees
// none. The device nodes have no driver behind them: opening one fails, which is all the fake
// can show; that the right nodes are there and no others is what is tested.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { accountingRecords, dockerOnNode, jobDir, run, runningContainerJob, waitFor } from '../support/slurm';
import { parseJobDetail } from '../../services/agent/jobs/slurm-allocation';

const PATH = '/usr/local/bin:/usr/bin:/bin';
/** the accelerator and HCA nodes a process sees, one per line, sorted */
const SHOW_DEVICES = 'ls -1 /dev/nvidia* /dev/kfd /dev/dri/* /dev/infiniband/* 2>/dev/null | sort';
const SHOW_ENV = 'env | grep -E "^((CUDA|NVIDIA|ROCR)_VISIBLE_DEVICES|GPU_DEVICE_ORDINAL)=" | sort';
/** scripts/sandbox.d/devices.sh's stand-in driver files, berthd's gpuHostFiles */
const DRIVER = '/opt/berth-sandbox-gpu';
const NVIDIA_CONTROL = ['/dev/nvidia-modeset', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidiactl'];
const NODE_GPUS: Record<string, string[]> = { n1: ['/dev/nvidia0', '/dev/nvidia1'], n2: ['/dev/nvidia2', '/dev/nvidia3'], n3: ['/dev/dri/renderD128', '/dev/dri/renderD129'] };
const NODE_HCAS: Record<string, string[]> = { n1: ['/dev/infiniband/rdma_cm', '/dev/infiniband/uverbs0', '/dev/infiniband/uverbs1'], n2: ['/dev/infiniband/rdma_cm', '/dev/infiniband/uverbs2'], n3: ['/dev/infiniband/rdma_cm', '/dev/infiniband/uverbs3'] };

function gpuIdx(jobId: string, nodeName: string): number[] {
  const r = run('scontrol', ['show', 'job', '-d', '-o', jobId]);
  return parseJobDetail(r.stdout, nodeName)?.gpuIndexes ?? [];
}

const lines = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter(Boolean);

function inContainer(nodeName: string, container: string, script: string): string[] {
  const r = dockerOnNode(nodeName, ['exec', container, 'sh', '-c', script]);
  assert.equal(r.code, 0, r.stderr);
  return lines(r.stdout);
}

describe('GPUs and HCAs: a job\'s containers get exactly its devices', { timeout: 300_000 }, () => {
  const cancel: string[] = [];
  after(() => {
    for (const id of cancel) run('scancel', [id]);
  });

  it('gives two 1-GPU jobs on one NVIDIA node one GPU each, in every container and step, with the variables Slurm sets', () => {
    const on = 'n1';
    const jobs = [runningContainerJob('alice', 'gpus', on, ['--gres=gpu:1']), runningContainerJob('bob', 'gpus', on, ['--gres=gpu:1'])];
    jobs.forEach((j) => cancel.push(j.jobId));
    const idx = jobs.map((j) => gpuIdx(j.jobId, on));
    assert.deepEqual(idx.flat().sort(), [0, 1], `Slurm's IDX: ${JSON.stringify(idx)}`);
    jobs.forEach((job, k) => {
      const user = k === 0 ? 'alice' : 'bob';
      const own = NODE_GPUS[on]![idx[k]![0]!]!;
      const expected = [...NVIDIA_CONTROL, own, ...NODE_HCAS[on]!].sort();
      const wantEnv = ['CUDA_VISIBLE_DEVICES=0', 'GPU_DEVICE_ORDINAL=0', `NVIDIA_VISIBLE_DEVICES=${own.replace('/dev/nvidia', '')}`, 'ROCR_VISIBLE_DEVICES=0'];
      assert.deepEqual(inContainer(on, job.container, SHOW_DEVICES), expected, `job ${job.jobId}'s container`);
      assert.deepEqual(inContainer(on, job.container, SHOW_ENV), wantEnv, `job ${job.jobId}'s container's variables`);
      // the driver's files the site lists (gpuHostFiles), read-only: the sandbox's stand-in nvidia-smi
      assert.deepEqual(inContainer(on, job.container, `${DRIVER}/nvidia/bin/nvidia-smi | head -1; touch ${DRIVER}/nvidia/x 2>/dev/null && echo writable || echo read-only`),
        ['fake nvidia-smi: CUDA_VISIBLE_DEVICES=0 ROCR_VISIBLE_DEVICES=0', 'read-only']);
      // a berth exec step of the job: in its container, with Slurm's own CUDA_VISIBLE_DEVICES
      const step = run('srun', ['--jobid', job.jobId, '--overlap', '-n1', 'berth', 'exec', '--', 'sh', '-c', `${SHOW_DEVICES}; echo --; ${SHOW_ENV}`], { user, cwd: job.dir, env: { PATH } });
      assert.equal(step.code, 0, step.stderr);
      const [devs, env] = step.stdout.split('--\n');
      assert.deepEqual(lines(devs!), expected, `a step of job ${job.jobId}`);
      assert.ok(lines(env!).includes('CUDA_VISIBLE_DEVICES=0'), env);
      // the user's own container: their GPU they may name, the other job's they may not
      const uid = run('id', ['-u', user]).stdout.trim();
      const dockerEnv = { PATH, DOCKER_HOST: `unix:///run/berth/${on}/jobs/${job.jobId}.docker.sock`, HOME: `/home/${user}` };
      const allowed = ['--user', `${uid}:${uid}`, '--network', 'host', '--security-opt', 'no-new-privileges', '--memory', '500m', '--memory-swap', '500m', '--cpus', '1'];
      const mine = run('docker', ['run', '--rm', ...allowed, '--device', own, sandbox().demoImage, 'sh', '-c', 'ls -1 /dev/nvidia* | sort'], { user, env: dockerEnv });
      assert.equal(mine.code, 0, mine.stderr);
      assert.deepEqual(lines(mine.stdout), [own]);
      const other = NODE_GPUS[on]!.find((f) => f !== own)!;
      const theirs = run('docker', ['run', '--rm', ...allowed, '--device', other, sandbox().demoImage, 'true'], { user, env: dockerEnv });
      assert.notEqual(theirs.code, 0, `${user} got the other job's GPU ${other}`);
      assert.match(theirs.stderr, /Devices|device/, theirs.stderr);
      // docker's --gpus, as the user types it: the job's one GPU, numbered 0 inside
      const gpusAll = run('docker', ['run', '--rm', '--gpus', 'all', sandbox().demoImage, 'sh', '-c', `${SHOW_DEVICES}; echo --; ${SHOW_ENV}`], { user, env: dockerEnv });
      assert.equal(gpusAll.code, 0, gpusAll.stderr);
      const [gDevs, gEnv] = gpusAll.stdout.split('--\n');
      assert.deepEqual(lines(gDevs!), expected, `docker run --gpus all in job ${job.jobId}`);
      assert.deepEqual(lines(gEnv!), ['CUDA_VISIBLE_DEVICES=0', 'GPU_DEVICE_ORDINAL=0', `NVIDIA_VISIBLE_DEVICES=${own.replace('/dev/nvidia', '')}`]);
      const gpusTwo = run('docker', ['run', '--rm', '--gpus', '2', sandbox().demoImage, 'true'], { user, env: dockerEnv });
      assert.notEqual(gpusTwo.code, 0, `${user} got two GPUs in a 1-GPU job`);
      assert.match(gpusTwo.stderr, /DeviceRequests.*within the job's GPUs/, gpusTwo.stderr);
    });
    // each job's accounting record names its own GPU
    for (const j of jobs) assert.equal(run('scancel', [j.jobId]).code, 0);
    jobs.forEach((job, k) => {
      const rec = waitFor(`job record of ${job.jobId}`, () => accountingRecords(on).find((r) => r.JobID === job.jobId && r.RecordType === 'job'));
      assert.deepEqual(rec.GPUs, [NODE_GPUS[on]![idx[k]![0]!]]);
    });
  });

  it('gives a job without GPUs none, and an AMD job its render node, card, kfd and ROCR_VISIBLE_DEVICES', () => {
    const plain = runningContainerJob('alice', 'gpus', 'n2');
    cancel.push(plain.jobId);
    assert.deepEqual(inContainer('n2', plain.container, SHOW_DEVICES), NODE_HCAS.n2);
    assert.deepEqual(inContainer('n2', plain.container, SHOW_ENV), []);
    assert.deepEqual(inContainer('n2', plain.container, `test -e ${DRIVER} && echo there || echo absent`), ['absent']);
    const amd = runningContainerJob('bob', 'gpus', 'n3', ['--gres=gpu:1']);
    cancel.push(amd.jobId);
    const [i] = gpuIdx(amd.jobId, 'n3');
    const render = NODE_GPUS.n3![i!]!;
    const card = `/dev/dri/card${Number(render.replace('/dev/dri/renderD', '')) - 128}`;
    assert.deepEqual(inContainer('n3', amd.container, SHOW_DEVICES), [card, render, '/dev/kfd', ...NODE_HCAS.n3!].sort());
    assert.deepEqual(inContainer('n3', amd.container, SHOW_ENV), ['CUDA_VISIBLE_DEVICES=0', 'GPU_DEVICE_ORDINAL=0', 'ROCR_VISIBLE_DEVICES=0']);
  });

  it("gives a step container's natively launched tasks in a plain allocation only the step's GPU", () => {
    const dir = jobDir('alice', 'gpus-step');
    const r = run('srun', ['-N1', '-w', 'n2', '--gres=gpu:1', `--container-image=${sandbox().demoImage}`, 'sh', '-c', `${SHOW_DEVICES}; echo --; ${SHOW_ENV}`], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(r.code, 0, r.stderr);
    const [devs, env] = r.stdout.split('--\n');
    const gpus = lines(devs!).filter((l) => /^\/dev\/nvidia\d+$/.test(l));
    assert.equal(gpus.length, 1, devs);
    assert.ok(NODE_GPUS.n2!.includes(gpus[0]!), devs);
    assert.ok(lines(env!).includes('CUDA_VISIBLE_DEVICES=0'), env);
  });
});
