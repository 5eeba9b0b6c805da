// The effect gate judges what dockerd stored, with the real hpc-default policy: containers
// whose stored state differs from what a create would be allowed are refused and removed.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { EffectGate } from '../../services/agent/authz/effect-gate';
import { createBodyOfStored, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../../services/agent/authz/stored-body';
import type { StateEngine, StoredContainer, StoredExec, VolumeInfo } from '../../services/agent/docker/engine';
import { silentLogger } from '../../services/agent/logger';
import { type MappedAction, mapAction } from '../../services/agent/docker-request/actions';
import { DockerRequest } from '../../services/agent/docker-request/request';
import { formatDenial, PolicyEngine } from '../../services/agent/policy/engine';
import { realHostPath } from '../../services/agent/policy/host-paths';
import { parsePolicyFile } from '../../services/agent/policy/parse-policy';
import type { PolicyContext } from '../../services/agent/policy/policy-types';

const policy = parsePolicyFile(readFileSync(path.join(import.meta.dirname, '..', '..', 'policies', 'hpc-default.json'), 'utf8'), 'hpc-default.json');
const engine = new PolicyEngine(policy, { resolvePath: realHostPath, registries: ['127.0.0.1:5000'] });
const root = mkdtempSync(path.join(os.tmpdir(), 'berth-effect-'));
chmodSync(root, 0o755);
const work = path.join(root, 'work');
mkdirSync(work);

const GiB = 1024 ** 3;
const CTX: PolicyContext = { user: 'alice', groups: ['alice'], job: { jobId: '42', uid: 2001, gid: 2001, cpus: 2, memoryBytes: GiB, devices: [], mountPrefixes: [root], groupIds: [], volumes: ['mine'] } };

/** a user's container as dockerd 20.10 stores an allowed `docker run` (defaults filled in) */
function stored(over: { config?: Record<string, unknown>; hostConfig?: Record<string, unknown>; mounts?: StoredContainer['mounts']; name?: string } = {}): StoredContainer {
  return {
    id: 'c'.repeat(64), name: over.name ?? 'mine', labels: {}, running: false,
    config: { User: '2001:2001', Image: '127.0.0.1:5000/berth/demo:1.0', Env: ['PATH=/bin'], Cmd: ['true'], Labels: { 'io.berth.job.id': '42', 'io.berth.role': 'user' }, Hostname: 'cccccccccccc', ...over.config },
    hostConfig: {
      Binds: [`${work}:/work`], NetworkMode: 'host', RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      CgroupnsMode: 'host', IpcMode: 'private', PidMode: '', Privileged: false, SecurityOpt: ['no-new-privileges'], Memory: GiB, MemorySwap: GiB, NanoCpus: 1e9,
      MaskedPaths: [...DEFAULT_MASKED_PATHS], ReadonlyPaths: [...DEFAULT_READONLY_PATHS], Runtime: 'runc', ShmSize: 67108864, ConsoleSize: [0, 0], Devices: [], ...over.hostConfig,
    },
    mounts: over.mounts ?? [{ type: 'bind', source: work, destination: '/work' }],
  };
}

class FakeState implements StateEngine {
  removed: string[] = [];
  constructor(readonly containers: StoredContainer[], readonly volumes: VolumeInfo[] = [], readonly execs = new Map<string, StoredExec>()) {}
  async storedContainer(id: string) { return this.containers.find((c) => c.id === id || c.name === id); }
  async storedExec(id: string) { return this.execs.get(id); }
  async volume(name: string) { return this.volumes.find((v) => v.name === name); }
  async removeVolume() {}
  async remove(id: string) { this.removed.push(id); }
}

function gate(state: FakeState, berthMade = false): EffectGate {
  return new EffectGate({
    engine: state,
    judgeStored: (body, ctx, name) => engine.decide({ action: 'container_create', body, query: { name }, stored: true }, ctx),
    formatDenial, daemon: { cgroupnsMode: 'host' }, berthMade: () => berthMade, log: silentLogger(),
  });
}

/** the request the authorizer hands the gate once the policy has allowed it */
const asked = (mapped: MappedAction, body: string | undefined): DockerRequest => new DockerRequest({ method: 'POST', uri: '/', body }, mapped);
const start = mapAction('POST', `/v1.41/containers/${'c'.repeat(64)}/start`)!;

describe('effect gate: a container is judged as dockerd stored it, before it starts', () => {
  it("lets an allowed container start: dockerd's own defaults are not held against it", async () => {
    const s = new FakeState([stored()]);
    assert.equal(await gate(s).check(asked(start, undefined), CTX), undefined);
    assert.deepEqual(s.removed, []);
  });

  const refused: [string, Parameters<typeof stored>[0], RegExp][] = [
    ['privileged (a HostConfig applied where berth did not see it)', { hostConfig: { Privileged: true } }, /HostConfig\.Privileged=true is not allowed/],
    ['root as its user', { config: { User: '0:0' } }, /User=0:0 is not allowed/],
    ['capabilities added', { hostConfig: { CapAdd: ['SYS_ADMIN'] } }, /CapAdd/],
    ['a bind of /etc', { hostConfig: { Binds: ['/etc:/x'] } }, /Binds\[0\]=\/etc:\/x is not allowed/],
    ['unmasked /proc', { hostConfig: { MaskedPaths: [] } }, /MaskedPaths/],
    ['the host PID namespace', { hostConfig: { PidMode: 'host' } }, /PidMode/],
    ["a name of berth's", { name: 'berth-n1-job-7' }, /names starting with berth- are berth's/],
    ['swap twice the memory (Docker default)', { hostConfig: { MemorySwap: 2 * GiB } }, /MemorySwap=2147483648/],
    ['another runtime', { hostConfig: { Runtime: 'io.containerd.runc.v2' } }, /Runtime=io\.containerd\.runc\.v2 is not allowed/],
    ['a log without max-size', { hostConfig: { LogConfig: { Type: 'json-file', Config: {} } } }, /json-file log has no max-size/],
    ['no pids limit', { hostConfig: { PidsLimit: -1 } }, /PidsLimit=-1 means no limit/],
    ['CPUs beyond the job', { hostConfig: { NanoCpus: 8e9 } }, /NanoCpus/],
    ['a cgroup namespace other than the default', { hostConfig: { CgroupnsMode: 'private', Cgroup: 'container:x' } }, /Cgroup/],
  ];
  for (const [what, over, why] of refused) {
    it(`refuses and removes a container with ${what}`, async () => {
      const s = new FakeState([stored(over)]);
      const msg = await gate(s).check(asked(start, undefined), CTX);
      assert.match(msg ?? '', /^berth refused to start container \S+ and removed it: as dockerd made it, /);
      assert.match(msg ?? '', why);
      assert.deepEqual(s.removed, ['c'.repeat(64)]);
    });
  }

  it('refuses a volume with driver options, and a named volume of another user; anonymous local ones pass', async () => {
    const bindVolume: VolumeInfo = { name: 'etcvol', driver: 'local', options: { type: 'none', o: 'bind', device: '/etc' }, labels: {} };
    const s = new FakeState([stored({ hostConfig: { Binds: ['etcvol:/x'] }, mounts: [{ type: 'volume', name: 'etcvol', source: '/var/lib/docker/volumes/etcvol/_data', destination: '/x' }] })], [bindVolume]);
    const msg = await gate(s).check(asked(start, undefined), { ...CTX, job: { ...CTX.job!, volumes: ['etcvol'] } });
    assert.match(msg ?? '', /volume etcvol has driver options \(type, o, device\)/);
    const other = new FakeState([stored({ hostConfig: { Binds: ['bobs:/x'] }, mounts: [{ type: 'volume', name: 'bobs', source: '/v', destination: '/x' }] })], [{ name: 'bobs', driver: 'local', options: {}, labels: {} }]);
    assert.match(await gate(other).check(asked(start, undefined), CTX) ?? '', /volume bobs is not one your job created/);
    const anon = 'a'.repeat(64);
    const ok = new FakeState([stored({ mounts: [{ type: 'volume', name: anon, source: '/v', destination: '/data' }] })], [{ name: anon, driver: 'local', options: {}, labels: {} }]);
    assert.equal(await gate(ok).check(asked(start, undefined), CTX), undefined);
  });

  it("leaves berth's own (sealed) containers to berth", async () => {
    const s = new FakeState([stored({ hostConfig: { PidMode: 'host' } })]);
    assert.equal(await gate(s, true).check(asked(start, undefined), CTX), undefined);
    assert.match(await gate(s, true).check(asked(mapAction('POST', `/v1.41/containers/${'c'.repeat(64)}/rename?name=x`)!, undefined), CTX) ?? '', /its name is berth's/);
  });

  it('checks the user and privilege of an exec as dockerd stored it', async () => {
    const execs = new Map<string, StoredExec>([
      ['root', { containerId: 'c'.repeat(64), user: '0', privileged: false, running: false }],
      ['priv', { containerId: 'c'.repeat(64), user: '2001:2001', privileged: true, running: false }],
      ['image', { containerId: 'c'.repeat(64), user: '', privileged: false, running: false }],
      ['ok', { containerId: 'c'.repeat(64), user: '2001:2001', privileged: false, running: false }],
    ]);
    const g = gate(new FakeState([stored({ config: { User: '' } })], [], execs));
    const at = (id: string) => g.check(asked(mapAction('POST', `/v1.41/exec/${id}/start`)!, undefined), CTX);
    assert.match(await at('root') ?? '', /would run as '0', not as you \(2001:2001\)/);
    assert.match(await at('priv') ?? '', /it is privileged/);
    assert.match(await at('image') ?? '', /would run as 'the image's user'/);
    assert.equal(await at('ok'), undefined);
  });

  it('lets an update lower limits, never raise or remove them, nor set a restart policy', async () => {
    const g = gate(new FakeState([stored({ hostConfig: { PidsLimit: 100 } })]));
    const update = mapAction('POST', `/v1.41/containers/${'c'.repeat(64)}/update`)!;
    assert.equal(await g.check(asked(update, JSON.stringify({ Memory: GiB / 2, PidsLimit: 50 })), CTX), undefined);
    assert.match(await g.check(asked(update, '{"PidsLimit":-1}'), CTX) ?? '', /PidsLimit=-1 would remove the limit/);
    assert.match(await g.check(asked(update, '{"PidsLimit":200}'), CTX) ?? '', /would raise the container's limit of 100/);
    assert.match(await g.check(asked(update, `{"Memory":${2 * GiB}}`), CTX) ?? '', /Memory=2147483648 would raise/);
    assert.match(await g.check(asked(update, '{"RestartPolicy":{"Name":"always"}}'), CTX) ?? '', /RestartPolicy always is not allowed/);
  });

  it("keeps an update's CPUs and memory nodes within the job's", async () => {
    const g = gate(new FakeState([stored()]));
    const update = mapAction('POST', `/v1.41/containers/${'c'.repeat(64)}/update`)!;
    const pinned: PolicyContext = { ...CTX, job: { ...CTX.job!, cpuset: { cpus: '2-3', mems: '0' } } };
    assert.equal(await g.check(asked(update, '{"CpusetCpus":"3","CpusetMems":""}'), pinned), undefined);
    assert.match(await g.check(asked(update, '{"CpusetCpus":"0-3"}'), pinned) ?? '', /CpusetCpus=0-3 is not within the job's 2-3/);
    assert.match(await g.check(asked(update, '{"CpusetMems":"1"}'), pinned) ?? '', /CpusetMems=1 is not within the job's 0/);
    assert.match(await g.check(asked(update, '{"CpusetCpus":"0"}'), CTX) ?? '', /not within the job's \(unknown\)/);
  });

  it("refuses a volume_create under a name someone else's volume has", async () => {
    const g = gate(new FakeState([], [{ name: 'taken', driver: 'local', options: {}, labels: {} }]));
    const vc = mapAction('POST', '/v1.41/volumes/create')!;
    assert.match(await g.check(asked(vc, '{"Name":"taken"}'), CTX) ?? '', /a volume named taken exists and is not yours/);
    assert.equal(await g.check(asked(vc, '{"Name":"fresh"}'), CTX), undefined);
  });

  it('drops only the defaults dockerd fills in', () => {
    const body = createBodyOfStored(stored({ hostConfig: { MaskedPaths: DEFAULT_MASKED_PATHS.slice(1) } }), { cgroupnsMode: 'host' });
    const hc = body.HostConfig as Record<string, unknown>;
    assert.deepEqual([hc.MaskedPaths !== undefined, hc.ReadonlyPaths, hc.CgroupnsMode], [true, undefined, undefined]);
  });
});
