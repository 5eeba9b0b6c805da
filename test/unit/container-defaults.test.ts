// A job user's plain `docker run IMAGE`: the job's Docker endpoint fills in the job's values
// the request leaves out, and keeps every value the user gave (the policy judges those).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyContainerDefaults, type ContainerDefaults, gpusForRequests } from '../../services/agent/authz/container-defaults';
import { rewriteRequest } from '../../services/agent/authz/job-docker-endpoint';

const job: ContainerDefaults = {
  uid: 2001, gid: 2001, groupIds: [2001, 3000], memoryBytes: 300 * 2 ** 20, cpus: 1,
  devices: ['/dev/infiniband/uverbs0', '/dev/nvidia1'], deviceEnv: ['CUDA_VISIBLE_DEVICES=0', 'NVIDIA_VISIBLE_DEVICES=1'],
};

describe("a user's container create, filled in with the job's values", () => {
  it('gives a bare docker run the job\'s user, groups, limits, devices, no-new-privileges and the host network', () => {
    // what `docker run --rm IMAGE id -u` sends (Docker 20.10 CLI)
    const body: Record<string, unknown> = { Image: 'img', Cmd: ['id', '-u'], Env: ['LANG=C'], HostConfig: { NetworkMode: 'default', AutoRemove: true } };
    const filled = applyContainerDefaults(body, job);
    assert.deepEqual(filled, ['User', 'GroupAdd', 'SecurityOpt', 'Memory', 'MemorySwap', 'NanoCpus', 'NetworkMode', 'Devices', 'Env']);
    const h = body.HostConfig as Record<string, unknown>;
    assert.equal(body.User, '2001:2001');
    assert.deepEqual(h.GroupAdd, ['3000']);
    assert.deepEqual(h.SecurityOpt, ['no-new-privileges']);
    assert.equal(h.Memory, 300 * 2 ** 20);
    assert.equal(h.MemorySwap, 300 * 2 ** 20, 'no swap beyond the memory');
    assert.equal(h.NanoCpus, 1e9);
    assert.equal(h.NetworkMode, 'host');
    assert.equal(h.AutoRemove, true);
    assert.deepEqual(h.Devices, job.devices.map((p) => ({ PathOnHost: p, PathInContainer: p, CgroupPermissions: 'rwm' })));
    assert.deepEqual(body.Env, ['LANG=C', 'CUDA_VISIBLE_DEVICES=0', 'NVIDIA_VISIBLE_DEVICES=1']);
  });

  it('fills in what the docker CLI sends for `docker run --rm IMAGE id -u` (captured), endpoint named "default" included', () => {
    const sent = '{"Hostname":"","User":"","Env":null,"Cmd":["id","-u"],"Image":"127.0.0.1:5000/berth/demo:1.0","Labels":{},"HostConfig":{"Binds":null,"NetworkMode":"default","AutoRemove":true,"CapAdd":null,"GroupAdd":null,"SecurityOpt":null,"Memory":0,"NanoCpus":0,"CpuPeriod":0,"CpuQuota":0,"CpusetCpus":"","Devices":[],"MemorySwap":0},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null}}}}';
    const body = JSON.parse(sent) as Record<string, unknown>;
    applyContainerDefaults(body, job);
    const h = body.HostConfig as Record<string, unknown>;
    assert.equal(body.User, '2001:2001');
    assert.deepEqual([h.NetworkMode, h.Memory, h.MemorySwap, h.NanoCpus], ['host', 300 * 2 ** 20, 300 * 2 ** 20, 1e9]);
    assert.deepEqual(body.NetworkingConfig, { EndpointsConfig: {} }, 'no endpoint on a network the container is not on');
    assert.equal((h.Devices as unknown[]).length, 2);
    assert.deepEqual(body.Env, job.deviceEnv);
  });

  it('keeps what the user gave, for the policy to judge', () => {
    const body: Record<string, unknown> = {
      Image: 'img', User: '0:0', Env: ['CUDA_VISIBLE_DEVICES=7'],
      HostConfig: { SecurityOpt: ['seccomp=unconfined'], Memory: 64 * 2 ** 30, CpuQuota: 50000, CpuPeriod: 100000, NetworkMode: 'none', Devices: [{ PathOnHost: '/dev/nvidia0', PathInContainer: '/dev/nvidia0', CgroupPermissions: 'rwm' }], GroupAdd: ['0'] },
    };
    const filled = applyContainerDefaults(body, job);
    const h = body.HostConfig as Record<string, unknown>;
    assert.deepEqual(filled, ['SecurityOpt', 'MemorySwap'], 'no-new-privileges is added beside the user\'s own options, and no swap beyond their memory');
    assert.equal(body.User, '0:0');
    assert.deepEqual(h.SecurityOpt, ['seccomp=unconfined', 'no-new-privileges']);
    assert.equal(h.Memory, 64 * 2 ** 30);
    assert.equal(h.MemorySwap, 64 * 2 ** 30);
    assert.equal(h.NanoCpus, undefined, 'a CPU quota given as period and quota is the user\'s');
    assert.equal(h.NetworkMode, 'none');
    assert.deepEqual(h.GroupAdd, ['0']);
    assert.equal((h.Devices as unknown[]).length, 1);
    assert.deepEqual(body.Env, ['CUDA_VISIBLE_DEVICES=7'], 'devices named by the user: their variables are theirs');
  });

  it('does not add no-new-privileges twice, nor devices or limits the job does not have', () => {
    const body: Record<string, unknown> = { Image: 'img', HostConfig: { SecurityOpt: ['no-new-privileges:true'] } };
    const filled = applyContainerDefaults(body, { ...job, memoryBytes: 0, cpus: 0, devices: [], deviceEnv: [], groupIds: [2001] });
    assert.deepEqual(filled, ['User', 'NetworkMode']);
    assert.deepEqual((body.HostConfig as Record<string, unknown>).SecurityOpt, ['no-new-privileges:true']);
    assert.equal((body.HostConfig as Record<string, unknown>).Memory, undefined);
  });

  it('leaves a body it cannot read alone', () => {
    const body: Record<string, unknown> = { Image: 'img', HostConfig: 'nonsense' };
    assert.deepEqual(applyContainerDefaults(body, job), []);
    assert.equal(body.HostConfig, 'nonsense');
    assert.equal(body.User, undefined);
  });

  it('is applied by the job endpoint to container creates only, beside the job label', () => {
    const create = rewriteRequest('POST', '/v1.41/containers/create?name=x', '42', Buffer.from(JSON.stringify({ Image: 'img' })), job);
    const made = JSON.parse(create.body!.toString()) as Record<string, unknown>;
    assert.equal(made.User, '2001:2001');
    assert.equal((made.Labels as Record<string, string>)['io.berth.job.id'], '42');
    const volume = rewriteRequest('POST', '/v1.41/volumes/create', '42', Buffer.from(JSON.stringify({ Name: 'v' })), job);
    assert.equal((JSON.parse(volume.body!.toString()) as Record<string, unknown>).User, undefined);
    const without = rewriteRequest('POST', '/v1.41/containers/create', '42', Buffer.from(JSON.stringify({ Image: 'img' })));
    assert.equal((JSON.parse(without.body!.toString()) as Record<string, unknown>).User, undefined);
  });

  describe('docker run --gpus, as the job\'s own GPUs', () => {
    const twoGpus: ContainerDefaults = {
      ...job, devices: ['/dev/nvidia2', '/dev/nvidia3', '/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/infiniband/uverbs0'],
      deviceEnv: ['CUDA_VISIBLE_DEVICES=0,1', 'NVIDIA_VISIBLE_DEVICES=2,3'],
    };
    // what the Docker 20.10 CLI sends for --gpus all, --gpus 1 and --gpus device=1
    const all = { Driver: '', Count: -1, DeviceIDs: null, Capabilities: [['gpu']], Options: {} };
    const one = { Driver: '', Count: 1, DeviceIDs: null, Capabilities: [['gpu']], Options: {} };
    const second = { Driver: '', Count: 0, DeviceIDs: ['1'], Capabilities: [['gpu']], Options: {} };

    it('turns --gpus all into every GPU of the job with the control devices and HCAs, and no DeviceRequests', () => {
      const body: Record<string, unknown> = { Image: 'img', HostConfig: { DeviceRequests: [all], Devices: [] } };
      applyContainerDefaults(body, twoGpus);
      const h = body.HostConfig as Record<string, unknown>;
      assert.equal(h.DeviceRequests, undefined, 'nothing left for a toolkit hook to act on');
      assert.deepEqual((h.Devices as { PathOnHost: string }[]).map((x) => x.PathOnHost).sort(),
        ['/dev/infiniband/uverbs0', '/dev/nvidia-uvm', '/dev/nvidia2', '/dev/nvidia3', '/dev/nvidiactl']);
      assert.deepEqual(body.Env, ['CUDA_VISIBLE_DEVICES=0,1', 'GPU_DEVICE_ORDINAL=0,1', 'NVIDIA_VISIBLE_DEVICES=2,3']);
    });

    it('gives --gpus 1 the first GPU and --gpus device=1 the second, numbered from 0 inside', () => {
      assert.deepEqual(gpusForRequests([one], twoGpus)?.devices, ['/dev/nvidia2', '/dev/nvidiactl', '/dev/nvidia-uvm']);
      const g = gpusForRequests([second], twoGpus);
      assert.deepEqual(g?.devices, ['/dev/nvidia3', '/dev/nvidiactl', '/dev/nvidia-uvm']);
      assert.deepEqual(g?.env, ['CUDA_VISIBLE_DEVICES=0', 'GPU_DEVICE_ORDINAL=0', 'NVIDIA_VISIBLE_DEVICES=3']);
    });

    it('adds the GPUs to devices the user named, without the HCAs they left out', () => {
      const body: Record<string, unknown> = { Image: 'img', HostConfig: { DeviceRequests: [one], Devices: [{ PathOnHost: '/dev/nvidia2', PathInContainer: '/dev/nvidia2', CgroupPermissions: 'rwm' }] } };
      applyContainerDefaults(body, twoGpus);
      assert.deepEqual(((body.HostConfig as Record<string, unknown>).Devices as { PathOnHost: string }[]).map((x) => x.PathOnHost), ['/dev/nvidia2', '/dev/nvidiactl', '/dev/nvidia-uvm']);
    });

    it('leaves for the policy to refuse what the job cannot give: more GPUs, another index, a UUID, another driver, no GPUs', () => {
      const cases: unknown[][] = [
        [{ ...one, Count: 3 }], [{ ...second, DeviceIDs: ['2'] }], [{ ...second, DeviceIDs: ['GPU-0b8f3c2e'] }],
        [{ ...all, Driver: 'amd' }], [{ ...all, Capabilities: [['compute']] }], [{ ...all, Options: { x: 'y' } }], ['nonsense'],
      ];
      for (const requests of cases) {
        const body: Record<string, unknown> = { Image: 'img', HostConfig: { DeviceRequests: requests } };
        applyContainerDefaults(body, twoGpus);
        assert.deepEqual((body.HostConfig as Record<string, unknown>).DeviceRequests, requests, JSON.stringify(requests));
      }
      const none = { Image: 'img', HostConfig: { DeviceRequests: [all] } };
      applyContainerDefaults(none, { ...job, devices: ['/dev/infiniband/uverbs0'] });
      assert.deepEqual(none.HostConfig.DeviceRequests, [all], 'a job without GPUs');
    });
  });
});
