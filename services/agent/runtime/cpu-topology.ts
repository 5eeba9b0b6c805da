// The node's CPUs as Slurm numbers them. Slurm's CPU_IDs (scontrol show job -d) are abstract
// ids: the node's hardware threads counted socket by socket, core by core, thread by thread.
// Linux numbers them otherwise (on a two-way SMT machine cpu0 and cpu4 are often the two
// threads of core 0), and cpuset.cpus wants Linux's numbers. The mapping is read from sysfs
// (cpuN/topology), as Slurm's own task/cgroup derives it from hwloc.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { formatCpuList, parseCpuList } from '../../shared/cpu-list';

interface Thread {
  cpu: number;
  socket: number;
  core: number;
}

export class CpuTopology {
  /** machine (Linux) cpu id by abstract (Slurm) id */
  private readonly byAbstract: number[];
  /** NUMA node of each machine cpu */
  private readonly nodeOf = new Map<number, number>();

  constructor(private readonly sysRoot = '/sys/devices/system') {
    const threads: Thread[] = [];
    const cpuDir = path.join(sysRoot, 'cpu');
    const online = readOptional(path.join(cpuDir, 'online'));
    const ids = online !== undefined
      ? parseCpuList(online)
      : safeList(cpuDir).map((n) => /^cpu(\d+)$/.exec(n)?.[1]).filter((n): n is string => n !== undefined).map(Number);
    for (const cpu of ids) {
      const topo = path.join(cpuDir, `cpu${cpu}`, 'topology');
      threads.push({ cpu, socket: Number(readOptional(path.join(topo, 'physical_package_id')) ?? 0), core: Number(readOptional(path.join(topo, 'core_id')) ?? cpu) });
    }
    // socket, then core, then the thread's own Linux number: Slurm's block order
    threads.sort((a, b) => a.socket - b.socket || a.core - b.core || a.cpu - b.cpu);
    this.byAbstract = threads.map((t) => t.cpu);
    const nodeDir = path.join(sysRoot, 'node');
    for (const n of safeList(nodeDir)) {
      const m = /^node(\d+)$/.exec(n);
      const list = m && readOptional(path.join(nodeDir, n, 'cpulist'));
      if (m && list) for (const cpu of parseCpuList(list)) this.nodeOf.set(cpu, Number(m[1]));
    }
  }

  /** The Linux cpu list of Slurm's abstract CPU_IDs; throws when Slurm names a CPU this node does not have. */
  machineCpus(abstractIds: string): string {
    return formatCpuList(parseCpuList(abstractIds).map((id) => {
      const cpu = this.byAbstract[id];
      if (cpu === undefined) throw new Error(`Slurm gave CPU ${id}, but this node has ${this.byAbstract.length} CPUs (is slurm.conf's CPUs= right for this node?)`);
      return cpu;
    }));
  }

  /** The NUMA memory nodes of a Linux cpu list ("0" on a machine without NUMA information). */
  memoryNodes(machineCpus: string): string {
    const nodes = parseCpuList(machineCpus).map((c) => this.nodeOf.get(c)).filter((n): n is number => n !== undefined);
    return nodes.length ? formatCpuList(nodes) : '0';
  }
}

function readOptional(file: string): string | undefined {
  try {
    return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
  } catch {
    return undefined;
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
