// What the job holds on this node (CPUs, memory), from `scontrol show job -d -o ID`: the
// prolog environment carries per-job CPU counts only and no memory at all. The detail
// part of that line has, per group of nodes, "Nodes=n[1-2] CPU_IDs=0-1 Mem=600".
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { countCpuIds, expandHostlist } from '../../shared/hostlist';

const run = promisify(execFile);

export interface NodeAllocation {
  cpus: number;
  memoryBytes: number;
  /** the job's end by its time limit (EndTime=, local time), when it has one */
  endTime?: Date;
}

export interface AllocationSource {
  /** undefined when Slurm could not be asked or the job holds nothing on node */
  allocation(jobId: string, node: string): Promise<NodeAllocation | undefined>;
}

export function parseJobDetail(line: string, node: string): NodeAllocation | undefined {
  const tokens = line.split(/\s+/);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!t.startsWith('Nodes=')) continue;
    if (!expandHostlist(t.slice('Nodes='.length)).includes(node)) continue;
    let cpus = 0;
    let memMb = 0;
    for (let j = i + 1; j < tokens.length && !tokens[j]!.startsWith('Nodes='); j++) {
      const [k, v = ''] = tokens[j]!.split('=');
      if (k === 'CPU_IDs') cpus = countCpuIds(v);
      else if (k === 'Mem') memMb = Number(v) || 0;
    }
    const end = line.match(/(?:^|\s)EndTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\s|$)/)?.[1];
    const endTime = end ? new Date(end) : undefined;
    return { cpus, memoryBytes: memMb * 1024 * 1024, ...(endTime && !Number.isNaN(endTime.getTime()) ? { endTime } : {}) };
  }
  return undefined;
}

/**
 * The line of job JOBID itself: for an array's first id scontrol prints one line per array
 * task, and the other tasks (some long ended) carry the same ArrayJobId.
 */
export function lineOfJob(stdout: string, jobId: string): string | undefined {
  return stdout.split('\n').find((l) => new RegExp(`(?:^|\\s)JobId=${jobId}(?:\\s|$)`).test(l));
}

export class ScontrolAllocationSource implements AllocationSource {
  async allocation(jobId: string, node: string): Promise<NodeAllocation | undefined> {
    try {
      const { stdout } = await run('scontrol', ['show', 'job', '-d', '-o', jobId], { timeout: 10_000 });
      const line = lineOfJob(stdout, jobId);
      return line === undefined ? undefined : parseJobDetail(line, node);
    } catch {
      return undefined;
    }
  }
}
