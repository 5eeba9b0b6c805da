// What a job user's plain `docker run IMAGE` gets without typing it: the job's own values,
// filled in by the job's Docker endpoint (job-docker-endpoint.ts) where the request leaves
// them out. They are exactly what the AuthZ policy holds the container to (the job's user and
// groups, its memory, CPUs and devices, no-new-privileges, the host network), so a request
// with nothing set passes as the job's container would, and one that sets a value keeps it:
// within the job it is accepted, outside it the policy refuses it with the allowed value.
// Nothing here grants anything: dockerd's AuthZ plugin judges the request as it arrives.

export interface ContainerDefaults {
  uid: number;
  gid: number;
  /** the user's supplementary groups (numbers) */
  groupIds: readonly number[];
  /** the job's memory on this node; 0 = not known (left to the user, and to the policy) */
  memoryBytes: number;
  /** the job's CPUs on this node; 0 = not known */
  cpus: number;
  /** the job's device nodes (its HCAs and GPUs) */
  devices: readonly string[];
  /** what the job's container has for its devices (CUDA_VISIBLE_DEVICES & co.): given with them */
  deviceEnv: readonly string[];
}

/** the variables that say which GPUs a process may use: they go with the devices they name */
export const DEVICE_ENV_NAMES = ['CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES', 'ROCR_VISIBLE_DEVICES', 'GPU_DEVICE_ORDINAL'];

const NO_NEW_PRIVILEGES = /^no-new-privileges([:=]true)?$/;

function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function unset(v: unknown): boolean {
  return v === undefined || v === null || v === '' || v === 0 || (Array.isArray(v) && v.length === 0);
}

/**
 * Fills the job's values into a container create body where it has none of its own; the
 * names of what was filled in. A body whose HostConfig is not an object is left alone (the
 * policy refuses what it cannot read).
 */
export function applyContainerDefaults(body: Record<string, unknown>, d: ContainerDefaults): string[] {
  if (body.HostConfig !== undefined && body.HostConfig !== null && !record(body.HostConfig)) return [];
  const host = record(body.HostConfig) ?? {};
  const filled: string[] = [];
  const fill = (obj: Record<string, unknown>, key: string, value: unknown, name: string): void => {
    if (!unset(obj[key])) return;
    obj[key] = value;
    filled.push(name);
  };
  fill(body, 'User', `${d.uid}:${d.gid}`, 'User');
  const groups = [...new Set(d.groupIds.filter((g) => g !== d.gid))].map(String);
  if (groups.length) fill(host, 'GroupAdd', groups, 'GroupAdd');
  const secOpts = Array.isArray(host.SecurityOpt) ? host.SecurityOpt : undefined;
  if (secOpts === undefined || host.SecurityOpt === null) {
    host.SecurityOpt = ['no-new-privileges'];
    filled.push('SecurityOpt');
  } else if (!secOpts.some((o) => typeof o === 'string' && NO_NEW_PRIVILEGES.test(o))) {
    secOpts.push('no-new-privileges');
    filled.push('SecurityOpt');
  }
  if (d.memoryBytes > 0) fill(host, 'Memory', d.memoryBytes, 'Memory');
  // no swap beyond the memory (the site's rule): memory plus swap equal to the memory, the user's or the job's
  if (typeof host.Memory === 'number' && host.Memory > 0) fill(host, 'MemorySwap', host.Memory, 'MemorySwap');
  // a CPU quota given as period/quota or as a CPU count is the user's
  if (d.cpus > 0 && unset(host.CpuQuota) && unset(host.CpuPeriod)) fill(host, 'NanoCpus', Math.round(d.cpus * 1e9), 'NanoCpus');
  // dockerd runs with --bridge=none: its default network does not exist
  if (unset(host.NetworkMode) || host.NetworkMode === 'default') {
    host.NetworkMode = 'host';
    filled.push('NetworkMode');
    // the CLI names its endpoint after the mode it asked for ("default"): it goes with it
    const endpoints = record(record(body.NetworkingConfig)?.EndpointsConfig);
    if (endpoints && 'default' in endpoints) delete endpoints.default;
  }
  if (d.devices.length && unset(host.Devices)) {
    host.Devices = d.devices.map((p) => ({ PathOnHost: p, PathInContainer: p, CgroupPermissions: 'rwm' }));
    filled.push('Devices');
    // the visible-devices variables name the devices given here, so they come with them
    const env = Array.isArray(body.Env) ? body.Env.filter((e): e is string => typeof e === 'string') : [];
    const own = new Set(env.map((e) => e.split('=')[0]));
    const add = d.deviceEnv.filter((e) => !own.has(e.split('=')[0]));
    if (add.length) {
      body.Env = [...env, ...add];
      filled.push('Env');
    }
  }
  body.HostConfig = host;
  return filled;
}
