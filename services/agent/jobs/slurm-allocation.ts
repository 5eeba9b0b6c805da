// What the job holds on this node (CPUs, memory), from `scontrol show job -d -o ID`: the
// prolog environment carries per-job CPU counts only and no memory at all. The detail
// part of that line has, per group of nodes, "Nodes=n[1-2] CPU_IDs=0-1 Mem=600".
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expandHostlist } from '../../shared/hostlist';
import { formatCpuList, parseCpuList } from '../../shared/cpu-list';
import { gpuIndexes } from '../devices/gpus';

const run = promisify(execFile);

export interface NodeAllocation {
  cpus: number;
  memoryBytes: number;
  /** the job's CPUs on the node as Slurm numbers them (CPU_IDs, e.g. "0-1"); '' when Slurm gave none */
  cpuIds?: string;
  /** Slurm's indexes of the job's GPUs on the node (GRES=gpu:N(IDX:...)), when it has any */
  gpuIndexes?: number[];
  /** the job's end by its time limit (EndTime=, local time), when it has one */
  endTime?: Date;
}

export interface AllocationSource {
  /** undefined when Slurm could not be asked or the job holds nothing on node */
  allocation(jobId: string, node: string): Promise<NodeAllocation | undefined>;
  /** why the last ask for the job could not reach Slurm (not: Slurm answered without it) */
  unreachable?(jobId: string): string | undefined;
}

export function parseJobDetail(line: string, node: string): NodeAllocation | undefined {
  const tokens = line.split(/\s+/);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!t.startsWith('Nodes=')) continue;
    if (!expandHostlist(t.slice('Nodes='.length)).includes(node)) continue;
    let cpus = 0;
    let cpuIds = '';
    let memMb = 0;
    let gpus: number[] = [];
    for (let j = i + 1; j < tokens.length && !tokens[j]!.startsWith('Nodes='); j++) {
      const [k, v = ''] = tokens[j]!.split('=');
      if (k === 'CPU_IDs') {
        const ids = parseCpuList(v);
        cpus = ids.length;
        cpuIds = formatCpuList(ids);
      } else if (k === 'Mem') memMb = Number(v) || 0;
      else if (k === 'GRES') gpus = gpuIndexes(tokens[j]!.slice('GRES='.length));
    }
    const end = line.match(/(?:^|\s)EndTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\s|$)/)?.[1];
    const endTime = end ? new Date(end) : undefined;
    return { cpus, ...(cpuIds ? { cpuIds } : {}), ...(gpus.length ? { gpuIndexes: gpus } : {}), memoryBytes: memMb * 1024 * 1024, ...(endTime && !Number.isNaN(endTime.getTime()) ? { endTime } : {}) };
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

/**
 * Asks slurmctld once per job and node: the prolog's container and the runtime gate's cpuset
 * both need the allocation at the job's start, and it does not change while the job runs.
 */
export class ScontrolAllocationSource implements AllocationSource {
  private readonly recent = new Map<string, { at: number; value: Promise<NodeAllocation | undefined> }>();
  private readonly failed = new Map<string, string>();

  constructor(
    private readonly ttlMillis = 60_000,
    private readonly now: () => number = Date.now,
    private readonly scontrol: (jobId: string) => Promise<string> = async (jobId) => (await run('scontrol', ['show', 'job', '-d', '-o', jobId], { timeout: 10_000 })).stdout,
  ) {}

  allocation(jobId: string, node: string): Promise<NodeAllocation | undefined> {
    const key = `${jobId}@${node}`;
    const t = this.now();
    for (const [k, v] of this.recent) if (t - v.at > this.ttlMillis) this.recent.delete(k);
    const hit = this.recent.get(key);
    if (hit) return hit.value;
    const value = this.ask(jobId, node);
    this.recent.set(key, { at: t, value });
    // a failed ask (slurmctld down) is not remembered: the next caller asks again
    void value.then((v) => { if (!v) this.recent.delete(key); });
    return value;
  }

  unreachable(jobId: string): string | undefined {
    return this.failed.get(jobId);
  }

  private async ask(jobId: string, node: string): Promise<NodeAllocation | undefined> {
    try {
      const line = lineOfJob(await this.scontrol(jobId), jobId);
      this.failed.delete(jobId);
      return line === undefined ? undefined : parseJobDetail(line, node);
    } catch (err) {
      const said = String((err as { stderr?: unknown }).stderr ?? '').trim().split('\n')[0] || (err as Error).message;
      // "Invalid job id specified": Slurm answered, it has no such job (a hook run by hand)
      if (/Invalid job id/i.test(said)) this.failed.delete(jobId);
      else {
        this.failed.set(jobId, said);
        // kept for the jobs starting now only
        if (this.failed.size > 1000) this.failed.delete(this.failed.keys().next().value as string);
      }
      return undefined;
    }
  }
}
