import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseProcCgroup, readCgroupUsage, usageFromDockerStats } from '../../services/agent/docker/container-usage';

function tree(files: Record<string, string>): { proc: string; cgroup: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-cg-'));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    writeFileSync(path.join(root, f), text);
  }
  return { proc: path.join(root, 'proc'), cgroup: path.join(root, 'cg') };
}

describe('container CPU and memory from cgroups', () => {
  it('parses /proc/PID/cgroup for v1 and v2 lines', () => {
    const m = parseProcCgroup('12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/system.slice/docker-abc.scope\n');
    assert.equal(m.get('memory'), '/docker/abc');
    assert.equal(m.get('cpuacct'), '/docker/abc');
    assert.equal(m.get('cpu'), '/docker/abc');
    assert.equal(m.get('systemd'), '/x');
    assert.equal(m.get(''), '/system.slice/docker-abc.scope');
  });

  it('cgroup v2: cpu.stat usage_usec and memory.peak', () => {
    const roots = tree({
      'proc/77/cgroup': '0::/system.slice/docker-abc.scope\n',
      'cg/cgroup.controllers': 'cpu memory\n',
      'cg/system.slice/docker-abc.scope/cpu.stat': 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n',
      'cg/system.slice/docker-abc.scope/memory.peak': '73400320\n',
      'cg/system.slice/docker-abc.scope/memory.current': '1000\n',
    });
    assert.deepEqual(readCgroupUsage(77, roots), { cpuNanos: 2_500_000_000, memoryPeakBytes: 73_400_320, source: 'cgroup-v2' });
  });

  it('cgroup v2 without memory.peak (kernels before 5.19): memory.current', () => {
    const roots = tree({
      'proc/77/cgroup': '0::/c\n', 'cg/cgroup.controllers': '', 'cg/c/cpu.stat': 'usage_usec 10\n', 'cg/c/memory.current': '4096\n',
    });
    assert.deepEqual(readCgroupUsage(77, roots), { cpuNanos: 10_000, memoryPeakBytes: 4096, source: 'cgroup-v2' });
  });

  it('cgroup v1 (this machine): cpuacct.usage and memory.max_usage_in_bytes, with cpu,cpuacct mounted together', () => {
    const roots = tree({
      'proc/9/cgroup': '4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n',
      'cg/cpu,cpuacct/docker/abc/cpuacct.usage': '987654321\n',
      'cg/memory/docker/abc/memory.usage_in_bytes': '100\n',
      'cg/memory/docker/abc/memory.max_usage_in_bytes': '52428800\n',
    });
    assert.deepEqual(readCgroupUsage(9, roots), { cpuNanos: 987_654_321, memoryPeakBytes: 52_428_800, source: 'cgroup-v1' });
  });

  it('gives up (for the docker stats fallback) when the files are not where the paths say', () => {
    const roots = tree({ 'proc/9/cgroup': '4:memory:/elsewhere\n2:cpuacct:/elsewhere\n', 'cg/memory/x': '' });
    assert.equal(readCgroupUsage(9, roots), undefined);
    assert.equal(readCgroupUsage(0, roots), undefined, 'no process');
    assert.equal(readCgroupUsage(12345, roots), undefined, 'process gone');
  });

  it('reads dockerd stats: max_usage on v1, usage otherwise', () => {
    assert.deepEqual(usageFromDockerStats({ cpu_stats: { cpu_usage: { total_usage: 5 } }, memory_stats: { max_usage: 9, usage: 3 } }), { cpuNanos: 5, memoryPeakBytes: 9, source: 'docker-stats' });
    assert.deepEqual(usageFromDockerStats({ cpu_stats: { cpu_usage: { total_usage: 5 } }, memory_stats: { usage: 3 } }), { cpuNanos: 5, memoryPeakBytes: 3, source: 'docker-stats' });
    assert.equal(usageFromDockerStats({}), undefined);
  });
});
