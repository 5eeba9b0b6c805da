// The device nodes a job's containers get on this node: the node's RDMA devices (every job's,
// like host networking) and the GPUs Slurm allocated to this job — their own files, the
// vendor's control devices, and the variables that number them as the container sees them.
// One answer for the job container, its step containers, the user's `docker run` (AuthZ) and
// berth-runc's last check.
import type { AllocationSource } from '../jobs/slurm-allocation';
import { expandDevices } from '../containers/devices';
import { jobGpus, nodeGpuFiles, type JobGpus } from './gpus';

export interface JobDeviceSet {
  /** every host device node a container of the job may have */
  devices: string[];
  gpus: JobGpus;
}

export interface JobDevicesDeps {
  node: string;
  rdmaDevices: readonly string[];
  allocations: AllocationSource;
  /** gres.conf's text ('' without one), read at berthd's start as slurmd reads it at its own */
  gresConf: string;
}

const NO_GPUS: JobGpus = { indexes: [], files: [], devices: [], env: {} };

export class JobDevices {
  constructor(private readonly d: JobDevicesDeps) {}

  /** The node's RDMA devices alone: what a job gets whose allocation Slurm cannot tell. */
  nodeDevices(): string[] {
    return expandDevices(this.d.rdmaDevices);
  }

  /**
   * Throws when Slurm gave GPUs this node's gres.conf does not have (a node's fault). A job
   * whose allocation Slurm cannot tell (slurmctld down) gets no GPUs: never another job's.
   */
  async of(jobId: string): Promise<JobDeviceSet> {
    const rdma = this.nodeDevices();
    const alloc = await this.d.allocations.allocation(jobId, this.d.node);
    const indexes = alloc?.gpuIndexes ?? [];
    const gpus = indexes.length ? jobGpus(nodeGpuFiles(this.d.gresConf, this.d.node), indexes) : NO_GPUS;
    return { devices: [...new Set([...rdma, ...gpus.devices])], gpus };
  }
}
