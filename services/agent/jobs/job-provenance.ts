// What the prologue learnt about the job's container that its labels do not hold: where the
// image came from, what was mounted and passed through, the pull and start figures. Kept in
// the job's checkpoint and read by accounting (accounting/accounting-record.ts).
import { registryHost } from '../../shared/images/registry-host';

/** a mount of the job's container; the field names are the accounting record's (and the checkpoint's) */
export interface ProvenanceMount {
  Source: string;
  Target: string;
  ReadOnly: boolean;
}

export interface JobProvenance {
  account: string;
  partition: string;
  registry: string;
  mounts: ProvenanceMount[];
  devices: string[];
  /** the job's GPUs on the node (device files); absent in checkpoints of berth before 14 */
  gpus?: string[];
  /** the CPUs the job's containers run on; absent as above */
  cpuset?: string;
  pulled: boolean;
  pullMillis: number;
  pullBytes: number;
  startLatencyMillis: number;
}

/** The provenance of a container the factory made (containers/container-factory.ts), from the values it made it with. */
export function provenanceOf(made: {
  image: { ref: { domain: string }; pulled: boolean; millis: number; pullBytes: number };
  mounts: readonly { source: string; target: string; readOnly: boolean }[];
  devices: readonly string[];
  gpus: readonly string[];
  cpuset: string;
  startLatencyMillis: number;
}, slurm: { account?: string; partition?: string }): JobProvenance {
  return {
    account: slurm.account ?? '',
    partition: slurm.partition ?? '',
    registry: registryHost(made.image.ref.domain),
    mounts: made.mounts.map((m) => ({ Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
    devices: [...made.devices],
    gpus: [...made.gpus],
    cpuset: made.cpuset,
    pulled: made.image.pulled,
    pullMillis: made.image.millis,
    pullBytes: made.image.pullBytes,
    startLatencyMillis: made.startLatencyMillis,
  };
}
