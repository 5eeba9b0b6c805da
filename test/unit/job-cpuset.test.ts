// The job's CPUs: Slurm's CPU lists, its abstract ids mapped to Linux's, the job cgroup's cpuset
// and what the runtime gate does with a container's own cpuset.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cpuListWithin, formatCpuList, parseCpuList } from '../../services/shared/cpu-list';
import { CpuTopology } from '../../services/agent/runtime/cpu-topology';
import { JobCgroups } from '../../services/agent/runtime/job-cgroups';
import { checkSpec } from '../../services/agent/runtime/oci-spec-check';
import { ScontrolAllocationSource } from '../../services/agent/jobs/slurm-allocation';
import { DEFAULT_SITE_LIMITS, siteLimitViolations } from '../../services/agent/policy/site-limits';
import { parseBody } from '../../services/agent/docker-request/body';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'berth-cpuset-'));
  dirs.push(d);
  return d;
}
function put(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
}

describe('CPU lists', () => {
  it('parses and formats ranges, refuses what is not one', () => {
    assert.deepEqual(parseCpuList('0-3,8,10-11'), [0, 1, 2, 3, 8, 10, 11]);
    assert.deepEqual(parseCpuList(' '), []);
    assert.equal(formatCpuList([8, 0, 1, 2, 3, 3, 11, 10]), '0-3,8,10-11');
    assert.equal(formatCpuList([5]), '5');
    assert.throws(() => parseCpuList('0-a'), /not a CPU list/);
    assert.throws(() => parseCpuList('3-1'), /runs backwards/);
    assert.equal(cpuListWithin('1,3', '0-3'), true);
    assert.equal(cpuListWithin('1,4', '0-3'), false);
    assert.equal(cpuListWithin('all', '0-3'), false);
  });
});

describe('CpuTopology', () => {
  // two sockets of two cores with two threads each, numbered as Linux does on most x86:
  // cpu0..3 the first thread of each core, cpu4..7 their siblings
  const sys = tmp();
  put(path.join(sys, 'cpu/online'), '0-7\n');
  for (let cpu = 0; cpu < 8; cpu++) {
    const core = cpu % 4;
    put(path.join(sys, `cpu/cpu${cpu}/topology/physical_package_id`), String(core < 2 ? 0 : 1));
    put(path.join(sys, `cpu/cpu${cpu}/topology/core_id`), String(core % 2));
  }
  put(path.join(sys, 'node/node0/cpulist'), '0-1,4-5\n');
  put(path.join(sys, 'node/node1/cpulist'), '2-3,6-7\n');
  const topo = new CpuTopology(sys);

  it("maps Slurm's abstract ids (socket, core, thread) to Linux's", () => {
    // abstract 0,1 = the two threads of socket 0's first core
    assert.equal(topo.machineCpus('0-1'), '0,4');
    assert.equal(topo.machineCpus('4-7'), '2-3,6-7');
  });
  it('gives the NUMA nodes of those CPUs', () => {
    assert.equal(topo.memoryNodes('0,4'), '0');
    assert.equal(topo.memoryNodes('2-3,6-7'), '1');
    assert.equal(topo.memoryNodes('0,2'), '0-1');
  });
  it('refuses a CPU the node does not have', () => {
    assert.throws(() => topo.machineCpus('0-8'), /CPU 8, but this node has 8 CPUs/);
  });
});

describe('JobCgroups cpuset', () => {
  it("fills each empty level from its parent, then sets the job's CPUs, and reads them back", () => {
    const root = tmp();
    put(path.join(root, 'cpuset/cpuset.cpus'), '0-7\n');
    put(path.join(root, 'cpuset/cpuset.mems'), '0-1\n');
    put(path.join(root, 'memory/memory.limit_in_bytes'), '9223372036854771712\n');
    const cg = new JobCgroups('n1', root);
    assert.equal(cg.cpusetOf('42'), undefined);
    cg.ensure('42', { cpus: 2, memoryBytes: 0, pids: 0, cpuset: { cpus: '0,4', mems: '0' } });
    assert.equal(readFileSync(path.join(root, 'cpuset/berth/cpuset.cpus'), 'utf8'), '0-7');
    assert.equal(readFileSync(path.join(root, 'cpuset/berth/n1/cpuset.mems'), 'utf8'), '0-1');
    assert.deepEqual(cg.cpusetOf('42'), { cpus: '0,4', mems: '0' });
  });
});

describe("the runtime gate's cpuset", () => {
  const base = {
    owner: { jobId: '42', uid: 2001, gid: 2001, gids: [], role: 'job' as const },
    containerId: 'c'.repeat(64), dataRoot: '/var/lib/docker', berthFiles: [], pinDir: '/run/pins/c', jobDevices: [],
    isHostNetns: () => true, cpuset: { cpus: '0,4', mems: '0' },
  };
  const spec = (cpu?: { cpus?: string; mems?: string }) => ({
    process: { user: { uid: 2001, gid: 2001 }, noNewPrivileges: true, capabilities: {} },
    linux: { seccomp: { defaultAction: 'SCMP_ACT_ERRNO' }, namespaces: [{ type: 'mount' }, { type: 'ipc' }, { type: 'uts' }, { type: 'pid' }, { type: 'network', path: '/run/docker/netns/default' }], ...(cpu ? { resources: { cpu } } : {}) },
  });
  it("puts a container that asked for no cpuset on the job's", () => {
    const v = checkSpec(spec(), base);
    assert.deepEqual(v.problems, []);
    assert.deepEqual((v.spec.linux as { resources: unknown }).resources, { cpu: { cpus: '0,4', mems: '0' } });
  });
  it('keeps a part of the job\'s CPUs that a container asked for', () => {
    const v = checkSpec(spec({ cpus: '4' }), base);
    assert.deepEqual(v.problems, []);
    assert.equal((v.spec.linux as { resources: { cpu: { cpus: string } } }).resources.cpu.cpus, '4');
  });
  it("refuses CPUs or memory nodes beyond the job's", () => {
    assert.match(checkSpec(spec({ cpus: '0-1' }), base).problems.join(), /asks for CPUs 0-1, but job 42 holds CPUs 0,4/);
    assert.match(checkSpec(spec({ mems: '1' }), base).problems.join(), /memory nodes 1, but job 42 holds memory nodes 0/);
    assert.match(checkSpec(spec({ cpus: 'all' }), base).problems.join(), /asks for CPUs all/);
  });
});

describe('ScontrolAllocationSource', () => {
  const line = 'JobId=7 Nodes=n1 CPU_IDs=1 Mem=600 GRES=';
  it('asks slurmctld once per job and node while the answer is fresh', async () => {
    let asked = 0;
    let now = 0;
    const src = new ScontrolAllocationSource(60_000, () => now, async () => { asked++; return line; });
    assert.equal((await src.allocation('7', 'n1'))?.cpuIds, '1');
    await src.allocation('7', 'n1');
    assert.equal(asked, 1);
    now = 61_000;
    await src.allocation('7', 'n1');
    assert.equal(asked, 2);
  });
  it('does not remember a failed ask', async () => {
    let asked = 0;
    const src = new ScontrolAllocationSource(60_000, () => 0, async () => { asked++; throw new Error('slurmctld down'); });
    assert.equal(await src.allocation('7', 'n1'), undefined);
    await new Promise((r) => setImmediate(r));
    assert.equal(await src.allocation('7', 'n1'), undefined);
    assert.equal(asked, 2);
  });
  it('tells a slurmctld it could not reach from a Slurm that has no such job', async () => {
    const fail = (stderr: string) => Object.assign(new Error('Command failed: scontrol'), { stderr });
    let answer: () => Promise<string> = async () => { throw fail('slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n'); };
    const src = new ScontrolAllocationSource(60_000, () => 0, async () => answer());
    assert.equal(await src.allocation('7', 'n1'), undefined);
    assert.equal(src.unreachable('7'), 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)');
    answer = async () => { throw fail('slurm_load_jobs error: Invalid job id specified\n'); };
    assert.equal(await src.allocation('7', 'n1'), undefined);
    assert.equal(src.unreachable('7'), undefined, 'Slurm answered: it has no such job');
    answer = async () => { throw fail('slurm_load_jobs error: Socket timed out on send/recv operation'); };
    await src.allocation('8', 'n1');
    answer = async () => line.replace('JobId=7', 'JobId=8');
    assert.equal((await src.allocation('8', 'n1'))?.cpuIds, '1');
    assert.equal(src.unreachable('8'), undefined, 'forgotten once Slurm answers');
  });
});

describe("the site's bound on a user's cpuset (AuthZ, at create)", () => {
  const ctx = (cpuset?: { cpus: string; mems: string }) => ({
    user: 'alice', groups: ['alice'],
    job: { jobId: '42', uid: 2001, gid: 2001, cpus: 2, memoryBytes: 0, devices: [], mountPrefixes: [], groupIds: [], ...(cpuset ? { cpuset } : {}) },
  });
  const judge = (hostConfig: Record<string, unknown>, top: Record<string, unknown> = {}, cpuset = { cpus: '2-3', mems: '0' }) =>
    siteLimitViolations(parseBody(JSON.stringify({ ...top, HostConfig: hostConfig })), ctx(cpuset), DEFAULT_SITE_LIMITS, false).map((v) => v.reason);
  it("allows none or a part of the job's CPUs, refuses others, also under the old top-level name", () => {
    assert.deepEqual(judge({ CpusetCpus: '' }), []);
    assert.deepEqual(judge({ CpusetCpus: '3', CpusetMems: '0' }), []);
    assert.match(judge({ CpusetCpus: '0-3' }).join(), /HostConfig\.CpusetCpus=0-3 is not allowed: job 42 holds CPUs 2-3 on this node/);
    assert.match(judge({ CpusetMems: '1' }).join(), /CpusetMems=1 is not allowed: job 42 holds memory nodes 0/);
    assert.match(judge({}, { Cpuset: '0' }).join(), /Cpuset=0 is not allowed: job 42 holds CPUs 2-3/);
    assert.match(judge({ CpusetCpus: 'x' }).join(), /CpusetCpus=.*x.* is not allowed/);
  });
});
