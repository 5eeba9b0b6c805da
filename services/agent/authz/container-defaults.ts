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
  // `--gpus`: the job's own GPU device nodes, which the policy and berth-runc then check
  if (Array.isArray(host.DeviceRequests) && host.DeviceRequests.length > 0) {
    const gpus = gpusForRequests(host.DeviceRequests, d);
    if (gpus) {
      const own = Array.isArray(host.Devices) ? host.Devices : [];
      const named = new Set(own.map((x) => record(x)?.PathOnHost));
      const hcas = d.devices.filter((p) => !isGpuDevice(p));
      host.Devices = [...own, ...[...(own.length ? [] : hcas), ...gpus.devices].filter((p) => !named.has(p)).map(deviceEntry)];
      delete host.DeviceRequests;
      body.Env = withDeviceEnv(body.Env, gpus.env);
      filled.push('Devices', 'Env');
    }
  }
  if (d.devices.length && unset(host.Devices)) {
    host.Devices = d.devices.map(deviceEntry);
    filled.push('Devices');
    // the visible-devices variables name the devices given here, so they come with them
    const before = Array.isArray(body.Env) ? body.Env.length : 0;
    body.Env = withDeviceEnv(body.Env, d.deviceEnv);
    if ((body.Env as unknown[]).length > before) filled.push('Env');
  }
  body.HostConfig = host;
  return filled;
}

const deviceEntry = (p: string) => ({ PathOnHost: p, PathInContainer: p, CgroupPermissions: 'rwm' });

/** the user's variables, and those of VARS the user did not set */
function withDeviceEnv(env: unknown, vars: readonly string[]): string[] {
  const mine = Array.isArray(env) ? env.filter((e): e is string => typeof e === 'string') : [];
  const own = new Set(mine.map((e) => e.split('=')[0]));
  return [...mine, ...vars.filter((e) => !own.has(e.split('=')[0]))];
}

const NVIDIA_GPU = /^\/dev\/nvidia\d+$/;
const NVIDIA_CONTROL = /^\/dev\/nvidia(ctl|-uvm|-uvm-tools|-modeset)$/;
const isGpuDevice = (p: string): boolean => NVIDIA_GPU.test(p) || NVIDIA_CONTROL.test(p) || /^\/dev\/(kfd|dri\/)/.test(p);

/**
 * What `docker run --gpus all|N|device=I,J` asks for, among the job's NVIDIA GPUs (numbered
 * from 0 as CUDA_VISIBLE_DEVICES numbers them in the job): their device nodes with the control
 * devices, and the visible-devices variables for them. undefined where the job cannot give it
 * (more GPUs than it has, an index or UUID it does not have, another driver or capability, a
 * job without NVIDIA GPUs): the request stays as it is and the policy refuses it.
 */
export function gpusForRequests(requests: readonly unknown[], d: ContainerDefaults): { devices: string[]; env: string[] } | undefined {
  const jobGpus = d.devices.filter((p) => NVIDIA_GPU.test(p));
  if (jobGpus.length === 0) return undefined;
  const picked = new Set<number>();
  for (const raw of requests) {
    const r = record(raw);
    if (!r) return undefined;
    const caps = Array.isArray(r.Capabilities) ? r.Capabilities : [];
    const asksGpu = caps.some((set) => Array.isArray(set) && set.includes('gpu'));
    if (!asksGpu || !['', 'nvidia', undefined, null].includes(r.Driver as string) || (record(r.Options) && Object.keys(record(r.Options)!).length)) return undefined;
    const ids = Array.isArray(r.DeviceIDs) ? r.DeviceIDs : [];
    if (ids.length) {
      for (const id of ids) {
        const i = typeof id === 'string' && /^\d+$/.test(id) ? Number(id) : NaN;
        if (!(i >= 0 && i < jobGpus.length) || (typeof r.Count === 'number' && r.Count !== 0)) return undefined;
        picked.add(i);
      }
    } else if (r.Count === -1) {
      jobGpus.forEach((_, i) => picked.add(i));
    } else if (typeof r.Count === 'number' && Number.isInteger(r.Count) && r.Count > 0 && r.Count <= jobGpus.length) {
      for (let i = 0; i < r.Count; i++) picked.add(i);
    } else {
      return undefined;
    }
  }
  const order = [...picked].sort((a, b) => a - b);
  const files = order.map((i) => jobGpus[i]!);
  const local = files.map((_, i) => String(i)).join(',');
  return {
    devices: [...files, ...d.devices.filter((p) => NVIDIA_CONTROL.test(p))],
    env: [`CUDA_VISIBLE_DEVICES=${local}`, `GPU_DEVICE_ORDINAL=${local}`, `NVIDIA_VISIBLE_DEVICES=${files.map((f) => f.replace('/dev/nvidia', '')).join(',')}`],
  };
}
