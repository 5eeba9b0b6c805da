// The fields of the Docker request bodies and queries that policies inspect (API 1.41–1.47),
// so that a rule naming a field dockerd does not have is refused when the policy loads:
// a misspelt deny rule (`HostConfig.Privilegd`) would otherwise never match and never say so.
// Actions not listed here are not checked; `any` subtrees (NetworkingConfig, IPAM) are not
// checked below their name.
import { closeMatches } from './close-matches';
import type { FieldPath } from '../docker-request/field-paths';

/** a scalar */
const S = 's' as const;
/** a list of scalars */
const L = 'l' as const;
/** a map with keys of the user's choosing (Labels, Sysctls) */
const M = 'm' as const;
/** not described further */
const A = 'a' as const;

export type FieldSchema = typeof S | typeof L | typeof M | typeof A | { [field: string]: FieldSchema } | [{ [field: string]: FieldSchema }];
export type ObjectSchema = { [field: string]: FieldSchema };

const RESOURCES: ObjectSchema = {
  CpuShares: S, Memory: S, NanoCpus: S, CgroupParent: S, BlkioWeight: S,
  BlkioWeightDevice: [{ Path: S, Weight: S }], BlkioDeviceReadBps: [{ Path: S, Rate: S }], BlkioDeviceWriteBps: [{ Path: S, Rate: S }],
  BlkioDeviceReadIOps: [{ Path: S, Rate: S }], BlkioDeviceWriteIOps: [{ Path: S, Rate: S }],
  CpuPeriod: S, CpuQuota: S, CpuRealtimePeriod: S, CpuRealtimeRuntime: S, CpusetCpus: S, CpusetMems: S,
  Devices: [{ PathOnHost: S, PathInContainer: S, CgroupPermissions: S }], DeviceCgroupRules: L,
  DeviceRequests: [{ Driver: S, Count: S, DeviceIDs: L, Capabilities: A, Options: M }],
  KernelMemory: S, KernelMemoryTCP: S, MemoryReservation: S, MemorySwap: S, MemorySwappiness: S, OomKillDisable: S, PidsLimit: S,
  Ulimits: [{ Name: S, Soft: S, Hard: S }], CpuCount: S, CpuPercent: S, IOMaximumIOps: S, IOMaximumBandwidth: S,
};

const MOUNT: ObjectSchema = {
  Target: S, Source: S, Type: S, ReadOnly: S, Consistency: S,
  BindOptions: { Propagation: S, NonRecursive: S, CreateMountpoint: S, ReadOnlyNonRecursive: S, ReadOnlyForceRecursive: S },
  VolumeOptions: { NoCopy: S, Labels: M, DriverConfig: { Name: S, Options: M }, Subpath: S },
  ImageOptions: { Subpath: S },
  TmpfsOptions: { SizeBytes: S, Mode: S, Options: A },
};

const RESTART_POLICY: ObjectSchema = { Name: S, MaximumRetryCount: S };

const HOST_CONFIG: ObjectSchema = {
  ...RESOURCES,
  Binds: L, ContainerIDFile: S, LogConfig: { Type: S, Config: M }, NetworkMode: S, PortBindings: A, RestartPolicy: RESTART_POLICY,
  AutoRemove: S, VolumeDriver: S, VolumesFrom: L, ConsoleSize: L, Annotations: M, CapAdd: L, CapDrop: L, CgroupnsMode: S,
  Dns: L, DnsOptions: L, DnsSearch: L, ExtraHosts: L, GroupAdd: L, IpcMode: S, Cgroup: S, Links: L, OomScoreAdj: S, PidMode: S,
  Privileged: S, PublishAllPorts: S, ReadonlyRootfs: S, SecurityOpt: L, StorageOpt: M, Tmpfs: M, UTSMode: S, UsernsMode: S,
  ShmSize: S, Sysctls: M, Runtime: S, Isolation: S, MaskedPaths: L, ReadonlyPaths: L, Init: S, Mounts: [MOUNT],
};

const CONTAINER_CONFIG: ObjectSchema = {
  Hostname: S, Domainname: S, User: S, AttachStdin: S, AttachStdout: S, AttachStderr: S, ExposedPorts: M, Tty: S, OpenStdin: S,
  StdinOnce: S, Env: L, Cmd: L, Healthcheck: { Test: L, Interval: S, Timeout: S, Retries: S, StartPeriod: S, StartInterval: S },
  ArgsEscaped: S, Image: S, Volumes: M, WorkingDir: S, Entrypoint: L, NetworkDisabled: S, MacAddress: S, OnBuild: L, Labels: M,
  StopSignal: S, StopTimeout: S, Shell: L,
};

/** dockerd before 25 also read HostConfig's fields (and Cpuset) from the top level of a create body. */
const CONTAINER_CREATE: ObjectSchema = { ...HOST_CONFIG, ...CONTAINER_CONFIG, Cpuset: S, HostConfig: HOST_CONFIG, NetworkingConfig: A };

export const BODY_FIELDS: Readonly<Record<string, ObjectSchema>> = {
  container_create: CONTAINER_CREATE,
  container_exec_create: { AttachStdin: S, AttachStdout: S, AttachStderr: S, ConsoleSize: L, DetachKeys: S, Tty: S, Env: L, Cmd: L, Privileged: S, User: S, WorkingDir: S },
  exec_start: { Detach: S, Tty: S, ConsoleSize: L },
  container_update: { ...RESOURCES, RestartPolicy: RESTART_POLICY },
  volume_create: { Name: S, Driver: S, DriverOpts: M, Labels: M, ClusterVolumeSpec: A },
  network_create: { Name: S, CheckDuplicate: S, Driver: S, Scope: S, Internal: S, Attachable: S, Ingress: S, ConfigOnly: S, ConfigFrom: { Network: S }, IPAM: A, EnableIPv4: S, EnableIPv6: S, Options: M, Labels: M },
  network_connect: { Container: S, EndpointConfig: A },
};

export const QUERY_FIELDS: Readonly<Record<string, readonly string[]>> = {
  container_create: ['name', 'platform'],
  container_rename: ['name'],
  image_create: ['fromImage', 'fromSrc', 'repo', 'tag', 'message', 'changes', 'platform'],
  image_push: ['tag', 'platform'],
  image_tag: ['repo', 'tag'],
  image_commit: ['container', 'repo', 'tag', 'comment', 'author', 'pause', 'changes'],
  container_delete: ['v', 'force', 'link'],
  container_kill: ['signal'],
};

/** Every body field name at any depth, for the seed forms' deny_payloads. */
export function allBodyFieldNames(): Set<string> {
  const out = new Set<string>();
  const walk = (s: ObjectSchema): void => {
    for (const [k, v] of Object.entries(s)) {
      out.add(k);
      if (Array.isArray(v)) walk(v[0]);
      else if (typeof v === 'object') walk(v);
    }
  };
  for (const s of Object.values(BODY_FIELDS)) walk(s);
  return out;
}

const fold = (s: string): string => s.toLowerCase();

/** Why `path` is not a field of `schema`, or undefined when it is (or leads into an unchecked part). */
export function checkBodyPath(schema: ObjectSchema, path: FieldPath): string | undefined {
  let cur: FieldSchema = schema;
  let at = '';
  for (const seg of path.segments) {
    if (cur === A || cur === M) return undefined;
    if (typeof cur === 'string' || Array.isArray(cur)) return `${at} has no field '${seg.name}'`;
    const obj: ObjectSchema = cur;
    const key = Object.keys(obj).find((k) => fold(k) === fold(seg.name));
    if (key === undefined) {
      const near = closeMatches(seg.name, Object.keys(obj));
      return `'${seg.name}' is not a field of ${at || 'the body'}${near.length ? `; close: ${near.map((n) => (at ? `${at}.${n}` : n)).join(', ')}` : ''}`;
    }
    let next: FieldSchema = obj[key]!;
    at = at ? `${at}.${key}` : key;
    if (seg.each) {
      if (next === L) next = S;
      else if (Array.isArray(next)) next = next[0];
      else if (next !== A) return `${at} is not a list: drop the [*]`;
    } else if (Array.isArray(next) || next === L) {
      if (seg !== path.segments[path.segments.length - 1]) return `${at} is a list: write ${at}[*] to reach its elements`;
    }
    cur = next;
  }
  if (path.keys && cur !== M && cur !== A) return `${at} is not a map: .* names the keys of maps such as Labels`;
  return undefined;
}
