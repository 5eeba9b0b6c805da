// berthd's side of berth-runc: the OCI spec check, the rewrite (pins, the job's cgroup) and the
// answer berth-runc reads, with a bundle on disk and a fake cgroup root.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { silentLogger } from '../../services/agent/logger';
import { JobCgroups } from '../../services/agent/runtime/job-cgroups';
import { checkSpec, type SpecContext } from '../../services/agent/runtime/oci-spec-check';
import { ContainerOwners, RuntimeGate } from '../../services/agent/runtime/runtime-gate';

const ID = 'f'.repeat(64);
const owner = { jobId: '42', uid: 2001, gid: 2001, gids: [2100], role: 'user' as const };

/** a spec as dockerd 20.10 writes it for an allowed `docker run --network host -v /home/alice/run:/work` */
function spec(): Record<string, unknown> {
  return {
    process: { user: { uid: 2001, gid: 2001, additionalGids: [2001] }, noNewPrivileges: true, capabilities: { bounding: ['CAP_CHOWN', 'CAP_KILL'], effective: [] } },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'ro'] },
      { destination: '/work', type: 'bind', source: '/home/alice/run', options: ['rbind'] },
      { destination: '/etc/hosts', type: 'bind', source: `/var/lib/docker/containers/${ID}/hosts`, options: ['rbind'] },
      { destination: '/data', type: 'bind', source: '/var/lib/docker/volumes/v/_data', options: ['rbind'] },
    ],
    hooks: { prestart: [{ path: '/proc/123/exe', args: ['libnetwork-setkey', '-exec-root=/x', ID, 'abc'] }] },
    linux: {
      namespaces: [{ type: 'mount' }, { type: 'network', path: '/run/docker/netns/default' }, { type: 'uts' }, { type: 'pid' }, { type: 'ipc' }],
      seccomp: { defaultAction: 'SCMP_ACT_ERRNO' }, devices: [],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/sys/firmware', '/proc/sched_debug', '/proc/timer_list', '/proc/acpi'],
      readonlyPaths: ['/proc/sys', '/proc/sysrq-trigger', '/proc/irq', '/proc/bus', '/proc/fs'],
      cgroupsPath: `/docker/${ID}`,
    },
  };
}

const CTX: SpecContext = {
  owner, containerId: ID, dataRoot: '/var/lib/docker', berthFiles: ['/var/lib/berth/jobs'], pinDir: `/run/berth/n1/pins/${ID}`,
  cgroupPath: `/berth/n1/job_42/${ID}`, jobDevices: ['/dev/infiniband/uverbs0'], isHostNetns: (f) => f === '/run/docker/netns/default',
};

describe("runtime gate: the OCI spec as runc will act on it", () => {
  it("pins the user's binds, leaves dockerd's own files, and moves the container into its job's cgroup", () => {
    const v = checkSpec(spec(), CTX);
    assert.deepEqual(v.problems, []);
    assert.deepEqual(v.pins, [{ target: `/run/berth/n1/pins/${ID}/2`, source: '/home/alice/run' }]);
    const mounts = (v.spec as { mounts: { source: string }[] }).mounts;
    assert.equal(mounts[2]!.source, `/run/berth/n1/pins/${ID}/2`);
    assert.equal(mounts[3]!.source, `/var/lib/docker/containers/${ID}/hosts`);
    assert.equal((v.spec as { linux: { cgroupsPath: string } }).linux.cgroupsPath, `/berth/n1/job_42/${ID}`);
  });

  const bad: [string, (s: any) => void, RegExp][] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['root', (s) => { s.process.user.uid = 0; }, /would run as 0:2001, not as the job's user 2001:2001/],
    ['a foreign group', (s) => { s.process.user.additionalGids = [0]; }, /groups 0/],
    ['no no-new-privileges', (s) => { s.process.noNewPrivileges = false; }, /without no-new-privileges/],
    ['CAP_SYS_ADMIN', (s) => { s.process.capabilities.bounding.push('CAP_SYS_ADMIN'); }, /bounding capabilities would include CAP_SYS_ADMIN/],
    ["another container's network", (s) => { s.linux.namespaces[1].path = '/proc/999/ns/net'; }, /join another network namespace/],
    ['the host PID namespace', (s) => { s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== 'pid'); }, /share the host's pid namespace/],
    ['a user namespace', (s) => { s.linux.namespaces.push({ type: 'user' }); }, /user namespace/],
    ['an OCI hook', (s) => { s.hooks.createRuntime = [{ path: '/tmp/evil' }]; }, /createRuntime hook \(\/tmp\/evil\)/],
    ['no seccomp', (s) => { delete s.linux.seccomp; }, /without a seccomp profile/],
    ['a device', (s) => { s.linux.devices = [{ path: '/dev/sda' }]; }, /device \/dev\/sda/],
    ['unmasked /proc/kcore', (s) => { s.linux.maskedPaths = []; }, /\/proc\/kcore.* would not be masked/],
    ['writable /sys', (s) => { s.mounts[1].options = []; }, /\/sys \(sysfs\) would be writable/],
    ['a sysctl', (s) => { s.linux.sysctl = { 'kernel.x': '1' }; }, /sysctls kernel\.x/],
  ];
  for (const [what, edit, why] of bad) {
    it(`refuses a container with ${what}`, () => {
      const s = spec();
      edit(s);
      const v = checkSpec(s, CTX);
      assert.match(v.problems.join('; '), why);
    });
  }

  it("exempts berth's own files only in berth's own containers", () => {
    const s = spec();
    (s.mounts as unknown[]).push({ destination: '/etc/passwd', type: 'bind', source: '/var/lib/berth/jobs/42/passwd' });
    assert.equal(checkSpec(s, { ...CTX, owner: { ...owner, role: 'job' } }).pins.length, 1);
    assert.equal(checkSpec(s, CTX).pins.length, 2);
  });
});

describe('runtime gate: the answer berth-runc reads', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-rt-'));
  const bundle = path.join(dir, ID);
  mkdirSync(bundle);
  const cgroupRoot = path.join(dir, 'cgroup');
  for (const c of ['memory', 'cpu', 'pids']) mkdirSync(path.join(cgroupRoot, c), { recursive: true });
  writeFileSync(path.join(cgroupRoot, 'memory', 'memory.limit_in_bytes'), '');
  const owners = new ContainerOwners();
  const gate = new RuntimeGate({
    socket: path.join(dir, 'rt.sock'), node: 'n1', owners, cgroups: new JobCgroups('n1', cgroupRoot), dataRoot: () => '/var/lib/docker',
    berthFiles: [], jobDevices: async () => [], nodeDevices: () => [], pinRoot: path.join(dir, 'pins'), log: silentLogger(),
  });

  it("lets root's own containers through unchanged", async () => {
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec()));
    assert.equal(await gate.answer(`CREATE ${ID} ${bundle}`), 'OK\n');
  });

  it("rewrites a job user's container, makes the job's cgroup with its limits, and names the pins", async () => {
    owners.expect(ID, { ...owner, limits: { cpus: 2, memoryBytes: 1 << 30, pids: 500 } });
    const s = spec();
    (s.linux as { namespaces: unknown[] }).namespaces.splice(1, 1); // --network none would keep it; host networking here
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(s));
    const a = await gate.answer(`CREATE ${ID} ${bundle}`);
    assert.equal(a, `PIN 2001 2001 2001,2100 ${path.join(dir, 'pins', ID, '2')} /home/alice/run\nOK\n`);
    const written = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { linux: { cgroupsPath: string } };
    assert.equal(written.linux.cgroupsPath, `/berth/n1/job_42/${ID}`);
    const job = path.join(cgroupRoot, 'memory', 'berth', 'n1', 'job_42');
    assert.equal(readFileSync(path.join(job, 'memory.limit_in_bytes'), 'utf8'), String(1 << 30));
    assert.equal(readFileSync(path.join(cgroupRoot, 'cpu', 'berth', 'n1', 'job_42', 'cpu.cfs_quota_us'), 'utf8'), '200000');
    assert.equal(readFileSync(path.join(cgroupRoot, 'pids', 'berth', 'n1', 'job_42', 'pids.max'), 'utf8'), '500');
    // at the job's end: the job's cgroup and the containers' below it, in every controller (empty directories here, as cgroupfs has)
    const other = path.join(cgroupRoot, 'pids', 'berth', 'n1', 'job_43', ID);
    mkdirSync(other, { recursive: true });
    assert.deepEqual(new JobCgroups('n1', cgroupRoot).remove('43'), []);
    assert.ok(!existsSync(path.dirname(other)));
  });

  it("answers without Slurm when it cannot answer in time: the job's cpuset unknown, only the node's devices", async () => {
    const root = path.join(dir, 'cgroup-slow');
    for (const c of ['memory', 'cpu', 'pids', 'cpuset']) mkdirSync(path.join(root, c), { recursive: true });
    writeFileSync(path.join(root, 'memory', 'memory.limit_in_bytes'), '');
    writeFileSync(path.join(root, 'cpuset', 'cpuset.cpus'), '0-3');
    writeFileSync(path.join(root, 'cpuset', 'cpuset.mems'), '0');
    const slowOwners = new ContainerOwners();
    const never = new Promise<never>(() => undefined);
    let asked = 0;
    const slow = new RuntimeGate({
      socket: path.join(dir, 'rt-slow.sock'), node: 'n1', owners: slowOwners, cgroups: new JobCgroups('n1', root), dataRoot: () => '/var/lib/docker',
      berthFiles: [], jobDevices: () => { asked++; return never; }, nodeDevices: () => [], jobCpuset: () => { asked++; return never; },
      pinRoot: path.join(dir, 'pins-slow'), log: silentLogger(),
    });
    const s = spec();
    (s.linux as { namespaces: unknown[] }).namespaces.splice(1, 1);
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(s));
    slowOwners.expect(ID, { ...owner, limits: { cpus: 2, memoryBytes: 0, pids: 0 } });
    const t0 = Date.now();
    assert.match(await slow.answer(`CREATE ${ID} ${bundle}`), /OK\n$/);
    const took = Date.now() - t0;
    assert.ok(took >= 1900 && took < 3000, `answered after ${took} ms`);
    assert.equal(asked, 2);
    // what the factory (or AuthZ) decided is used as it is: no question to Slurm
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(s));
    slowOwners.expect(ID, { ...owner, limits: { cpus: 2, memoryBytes: 0, pids: 0, cpuset: { cpus: '2', mems: '0' } }, devices: [] });
    const t1 = Date.now();
    assert.match(await slow.answer(`CREATE ${ID} ${bundle}`), /OK\n$/);
    assert.ok(Date.now() - t1 < 1000);
    assert.equal(asked, 2);
    const written = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { linux: { resources: { cpu: { cpus: string } } } };
    assert.equal(written.linux.resources.cpu.cpus, '2');
  });

  it('refuses with the reasons, and refuses requests that are not a bundle of the container', async () => {
    const s = spec();
    (s.process as { user: { uid: number } }).user.uid = 0;
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(s));
    assert.match(await gate.answer(`CREATE ${ID} ${bundle}`), /^DENY container ffffffffffff of job 42 may not run: it would run as 0:2001/);
    assert.match(await gate.answer(`CREATE ${ID} /tmp/other`), /^DENY the bundle \/tmp\/other is not container/);
    assert.match(await gate.answer('CREATE x /y'), /^DENY berth-runc sent a request berthd does not understand/);
  });
});
