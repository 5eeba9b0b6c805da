// One cgroup per job and node, the parent of every container of the job (berth's and the
// user's): its memory, CPU and pids limits bound the SUM over the job's containers, however
// many a user starts. cgroup v1 with dockerd's cgroupfs driver: /sys/fs/cgroup/<controller>/
// berth/<node>/job_<id>; runc makes each container's own cgroup below it (and the parents it
// needs in the other controllers). Removed at the job's end, once its containers are gone.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface JobLimits {
  cpus: number;
  memoryBytes: number;
  pids: number;
  /** the job's CPUs and NUMA memory nodes on this node, in Linux's numbering (cpuset.cpus, cpuset.mems); null: Slurm was asked and could not say */
  cpuset?: JobCpuset | null;
}

export interface JobCpuset {
  cpus: string;
  mems: string;
}

const CFS_PERIOD_US = 100_000;

export class JobCgroups {
  constructor(
    private readonly node: string,
    /** where the cgroup v1 controllers are mounted */
    private readonly root = '/sys/fs/cgroup',
  ) {}

  /** the cgroup path runc is given (relative to each controller's root) */
  parentOf(jobId: string): string {
    return `/berth/${this.node}/job_${jobId}`;
  }

  /** the path a container of the job gets */
  pathFor(jobId: string, containerId: string): string {
    return `${this.parentOf(jobId)}/${containerId}`;
  }

  /** cgroup v1 only: on cgroup v2 (or a systemd-driven dockerd) berth leaves placement to dockerd */
  get supported(): boolean {
    return existsSync(path.join(this.root, 'memory', 'memory.limit_in_bytes'));
  }

  private dir(controller: string, jobId: string): string {
    return path.join(this.root, controller, this.parentOf(jobId));
  }

  /** Makes the job's cgroups and sets their limits; limits of 0 are left unlimited. Idempotent. */
  ensure(jobId: string, limits: JobLimits): void {
    const mem = this.dir('memory', jobId);
    mkdirSync(mem, { recursive: true });
    if (limits.memoryBytes > 0) {
      const swapFile = path.join(mem, 'memory.memsw.limit_in_bytes');
      // memsw must stay >= the memory limit: lower it last when lowering, raise it first when raising
      try {
        writeFileSync(path.join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes));
        if (existsSync(swapFile)) writeFileSync(swapFile, String(limits.memoryBytes));
      } catch {
        if (existsSync(swapFile)) writeFileSync(swapFile, String(limits.memoryBytes));
        writeFileSync(path.join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      }
    }
    const cpu = this.dir('cpu', jobId);
    mkdirSync(cpu, { recursive: true });
    if (limits.cpus > 0) {
      writeFileSync(path.join(cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      writeFileSync(path.join(cpu, 'cpu.cfs_quota_us'), String(Math.round(limits.cpus * CFS_PERIOD_US)));
    }
    if (limits.cpuset) this.ensureCpuset(jobId, limits.cpuset);
    const pids = this.dir('pids', jobId);
    mkdirSync(pids, { recursive: true });
    if (limits.pids > 0) writeFileSync(path.join(pids, 'pids.max'), String(limits.pids));
  }

  /** The job's cpuset as set at its first container, if its cgroup is there (it outlives a berthd restart). */
  cpusetOf(jobId: string): JobCpuset | undefined {
    const dir = this.dir('cpuset', jobId);
    const cpus = readOptional(path.join(dir, 'cpuset.cpus'));
    const mems = readOptional(path.join(dir, 'cpuset.mems'));
    return cpus && mems ? { cpus, mems } : undefined;
  }

  /**
   * cgroup v1 cpusets start empty, and a cpuset with no CPUs takes no task: each level from the
   * controller's root down gets its parent's CPUs and memory nodes, then the job's level the job's.
   */
  private ensureCpuset(jobId: string, cpuset: JobCpuset): void {
    const base = path.join(this.root, 'cpuset');
    let dir = base;
    for (const part of this.parentOf(jobId).split('/').filter(Boolean)) {
      const parent = dir;
      dir = path.join(dir, part);
      mkdirSync(dir, { recursive: true });
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (!readOptional(path.join(dir, f))) writeFileSync(path.join(dir, f), readOptional(path.join(parent, f)) ?? '');
      }
    }
    // mems first when widening, cpus and mems are independent of each other in v1
    writeFileSync(path.join(dir, 'cpuset.mems'), cpuset.mems);
    writeFileSync(path.join(dir, 'cpuset.cpus'), cpuset.cpus);
  }

  /**
   * The jobs that have a cgroup of berth's on this node, with the time (ms) it was made: found
   * by the orphan sweep, so that the cgroups of a job whose epilogue never reached berthd (its
   * only containers were step containers, all gone) are removed with it.
   */
  jobs(): Map<string, number> {
    const out = new Map<string, number>();
    const base = path.join(this.root, 'memory', 'berth', this.node);
    let entries: string[] = [];
    try {
      entries = readdirSync(base);
    } catch {
      return out;
    }
    for (const name of entries) {
      const m = /^job_(\d+)$/.exec(name);
      if (!m) continue;
      try {
        out.set(m[1]!, statSync(path.join(base, name)).mtimeMs);
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  /** Removes the job's cgroups in every controller (after its containers are gone); what still holds tasks stays. */
  remove(jobId: string): string[] {
    const left: string[] = [];
    let controllers: string[] = [];
    try {
      controllers = readdirSync(this.root);
    } catch {
      return left;
    }
    for (const c of controllers) {
      const dir = path.join(this.root, c, this.parentOf(jobId));
      if (!existsSync(dir)) continue;
      // leaf first: the containers' own cgroups runc left, then the job's
      let children: string[] = [];
      try {
        children = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
      } catch {
        children = [];
      }
      for (const d of [...children, dir]) {
        try {
          rmdirSync(d);
        } catch {
          left.push(d);
        }
      }
    }
    return left;
  }
}

function readOptional(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}
