// A container as dockerd stored it, put back into the shape of a create request, so that the
// site policy can judge what dockerd will act on at start with the same rules it applied to
// the request. dockerd fills in defaults at create (masked paths, the cgroup namespace mode
// of the host's cgroup version, the runtime, the log driver, swap twice the memory); those
// that are exactly dockerd's safe defaults are dropped again, as if unset, and anything else
// stays to be judged.
import type { StoredContainer } from '../docker/engine';

/** dockerd's default masked and read-only paths (oci.DefaultSpec, Engine 20.10 and later). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
];
export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface DaemonDefaults {
  /** what dockerd stores for an unset CgroupnsMode: 'host' on cgroup v1 hosts, 'private' on v2 */
  cgroupnsMode: 'host' | 'private';
}

function coversDefaults(value: unknown, defaults: readonly string[]): boolean {
  return Array.isArray(value) && defaults.every((d) => value.includes(d));
}

/** Config fields of a create request that dockerd stores as they came (inspect's Config). */
const CONFIG_FIELDS = ['User', 'Image', 'Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'Labels', 'Tty', 'OpenStdin', 'StopSignal', 'Healthcheck', 'Volumes', 'NetworkDisabled', 'MacAddress', 'Shell', 'OnBuild', 'Domainname'];

/** The create body that would have made `c`, for policy.judgeStored; the container's name goes in the query. */
export function createBodyOfStored(c: StoredContainer, daemon: DaemonDefaults): Record<string, unknown> {
  const hostConfig: Record<string, unknown> = { ...c.hostConfig };
  if (coversDefaults(hostConfig.MaskedPaths, DEFAULT_MASKED_PATHS)) delete hostConfig.MaskedPaths;
  if (coversDefaults(hostConfig.ReadonlyPaths, DEFAULT_READONLY_PATHS)) delete hostConfig.ReadonlyPaths;
  if (hostConfig.CgroupnsMode === daemon.cgroupnsMode) delete hostConfig.CgroupnsMode;
  const body: Record<string, unknown> = {};
  for (const k of CONFIG_FIELDS) if (c.config[k] !== undefined && c.config[k] !== null) body[k] = c.config[k];
  body.HostConfig = hostConfig;
  return body;
}
