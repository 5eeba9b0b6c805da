// A job's GPUs from Slurm's GRES detail and gres.conf, and what a container needs for them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gpuIndexes, jobGpus, nodeGpuFiles, vendorOf } from '../../services/agent/devices/gpus';
import { JobDevices } from '../../services/agent/devices/job-devices';

describe('GPUs of a job', () => {
  it("reads the GPU indexes of scontrol's GRES detail", () => {
    assert.deepEqual(gpuIndexes('gpu:2(IDX:0-1)'), [0, 1]);
    assert.deepEqual(gpuIndexes('gpu:a100:1(IDX:3)'), [3]);
    assert.deepEqual(gpuIndexes('nic:1(IDX:0),gpu:2(IDX:1,3)'), [1, 3]);
    assert.deepEqual(gpuIndexes('gpu:a100:1(IDX:0),gpu:v100:1(IDX:2)'), [0, 2]);
    assert.deepEqual(gpuIndexes(''), []);
    assert.deepEqual(gpuIndexes('gpu:0(IDX:N/A)'), []);
    assert.deepEqual(gpuIndexes('mps:100(0/100,0/100)'), []);
  });

  it("lists this node's GPU files in gres.conf order", () => {
    const conf = [
      '# fake GPUs',
      'NodeName=n1 Name=gpu Type=fake File=/dev/nvidia[0-1]',
      'NodeName=n[2-3] Name=gpu File=/dev/dri/renderD[128-129]',
      'NodeName=n1 Name=nic File=/dev/infiniband/uverbs0',
      'Name=gpu File=/dev/nvidia9  # every node',
    ].join('\n');
    assert.deepEqual(nodeGpuFiles(conf, 'n1'), ['/dev/nvidia0', '/dev/nvidia1', '/dev/nvidia9']);
    assert.deepEqual(nodeGpuFiles(conf, 'n3'), ['/dev/dri/renderD128', '/dev/dri/renderD129', '/dev/nvidia9']);
    assert.deepEqual(nodeGpuFiles('', 'n1'), []);
  });

  it('tells the vendor from the device path', () => {
    assert.equal(vendorOf('/dev/nvidia3'), 'nvidia');
    assert.equal(vendorOf('/dev/nvidiactl'), undefined);
    assert.equal(vendorOf('/dev/dri/renderD130'), 'amd');
    assert.equal(vendorOf('/dev/infiniband/uverbs0'), undefined);
  });

  it('gives the job only its own GPU files, numbered from 0 inside', () => {
    const g = jobGpus(['/dev/nvidia0', '/dev/nvidia1'], [1], '/nonexistent-sys');
    assert.deepEqual(g.files, ['/dev/nvidia1']);
    assert.ok(g.devices.includes('/dev/nvidia1'));
    assert.ok(!g.devices.includes('/dev/nvidia0'));
    assert.deepEqual(g.env, { CUDA_VISIBLE_DEVICES: '0', ROCR_VISIBLE_DEVICES: '0', GPU_DEVICE_ORDINAL: '0', NVIDIA_VISIBLE_DEVICES: '1' });
    assert.deepEqual(jobGpus(['/dev/dri/renderD128', '/dev/dri/renderD129'], [0, 1], '/nonexistent-sys').env, { CUDA_VISIBLE_DEVICES: '0,1', ROCR_VISIBLE_DEVICES: '0,1', GPU_DEVICE_ORDINAL: '0,1' });
    assert.deepEqual(jobGpus(['/dev/nvidia0'], [], '/nonexistent-sys'), { indexes: [], files: [], devices: [], env: {} });
    assert.throws(() => jobGpus(['/dev/nvidia0'], [2]), /Slurm gave GPU 2, but gres.conf names 1 GPUs/);
  });
});

describe('JobDevices', () => {
  const conf = 'NodeName=n1 Name=gpu File=/dev/nvidia[0-1]\n';
  const source = (gpuIndexes?: number[]) => ({ allocation: async () => (gpuIndexes === undefined ? undefined : { cpus: 1, memoryBytes: 0, ...(gpuIndexes.length ? { gpuIndexes } : {}) }) });
  it("adds the job's own GPUs to the node's RDMA devices, and none when Slurm cannot say", async () => {
    const mk = (idx?: number[]) => new JobDevices({ node: 'n1', rdmaDevices: ['/dev/null'], allocations: source(idx), gresConf: conf });
    const one = await mk([1]).of('7');
    assert.deepEqual(one.gpus.files, ['/dev/nvidia1']);
    assert.ok(one.devices.includes('/dev/null') && one.devices.includes('/dev/nvidia1') && !one.devices.includes('/dev/nvidia0'));
    assert.deepEqual((await mk([]).of('7')).devices, ['/dev/null']);
    assert.deepEqual((await mk(undefined).of('7')).devices, ['/dev/null']);
    await assert.rejects(mk([5]).of('7'), /Slurm gave GPU 5, but gres.conf names 2 GPUs/);
  });
});
