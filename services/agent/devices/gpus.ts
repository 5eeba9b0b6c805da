// A job's GPUs on this node, as Slurm allocated them: the indexes in `scontrol show job -d`'s
// GRES=gpu:N(IDX:...) name the node's GPU device files in gres.conf order (Slurm's IDX), and
// each vendor's GPUs need their control devices beside them.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { expandHostlist } from '../../shared/hostlist';
import { parseCpuList } from '../../shared/cpu-list';

export type GpuVendor = 'nvidia' | 'amd';

export interface JobGpus {
  /** Slurm's indexes of the job's GPUs on this node (IDX) */
  indexes: number[];
  /** the GPUs' own device files, in index order */
  files: string[];
  /** every device node a container of the job needs for them (GPUs, control and render nodes) */
  devices: string[];
  /** the variables the vendors' runtimes read, as Slurm sets them (the job's GPUs numbered from 0) */
  env: Record<string, string>;
}

/** The GPU indexes in a GRES detail ("gpu:2(IDX:0-1)", "gpu:a100:1(IDX:1),nic:1(IDX:0)"); [] for none. */
export function gpuIndexes(gres: string): number[] {
  const out: number[] = [];
  for (const m of gres.matchAll(/(?:^|,)gpu(?::[^:(,]+)?:\d+\(IDX:([^)]*)\)/g)) {
    if (m[1] && m[1] !== 'N/A') out.push(...parseCpuList(m[1]));
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/**
 * The node's GPU device files in Slurm's order, from gres.conf's Name=gpu lines for this node
 * (a line without NodeName is every node's).
 */
export function nodeGpuFiles(gresConf: string, node: string): string[] {
  const files: string[] = [];
  for (const raw of gresConf.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const kv = new Map<string, string>();
    for (const tok of line.split(/\s+/)) {
      const i = tok.indexOf('=');
      if (i > 0) kv.set(tok.slice(0, i).toLowerCase(), tok.slice(i + 1));
    }
    if (kv.get('name') !== 'gpu' || !kv.has('file')) continue;
    const nodes = kv.get('nodename');
    if (nodes !== undefined && !expandHostlist(nodes).includes(node)) continue;
    // File=/dev/nvidia[0-1] is a host list of paths
    files.push(...expandHostlist(kv.get('file')!));
  }
  return files;
}

function isCharDevice(p: string): boolean {
  try {
    return statSync(p).isCharacterDevice();
  } catch {
    return false;
  }
}

export function vendorOf(file: string): GpuVendor | undefined {
  if (/^\/dev\/nvidia\d+$/.test(file)) return 'nvidia';
  if (/^\/dev\/dri\/(renderD|card)\d+$/.test(file)) return 'amd';
  return undefined;
}

const NVIDIA_CONTROL = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidia-modeset'];

/** The DRM card node of a render node: the same device's other node in sysfs, else renderD(128+k) ↔ card(k). */
function cardOf(render: string, sysRoot: string): string | undefined {
  const name = path.basename(render);
  const drm = path.join(sysRoot, 'class/drm', name, 'device/drm');
  try {
    const card = readdirSync(drm).find((n) => /^card\d+$/.test(n));
    if (card) return path.join('/dev/dri', card);
  } catch {
    // no sysfs for it (a device node made by hand): fall back to the kernel's numbering
  }
  const k = /^renderD(\d+)$/.exec(name);
  return k ? `/dev/dri/card${Number(k[1]) - 128}` : undefined;
}

/** What a container needs for the job's GPUs with indexes idx among the node's files. */
export function jobGpus(nodeFiles: readonly string[], indexes: readonly number[], sysRoot = '/sys'): JobGpus {
  const files = indexes.map((i) => {
    const f = nodeFiles[i];
    if (f === undefined) throw new Error(`Slurm gave GPU ${i}, but gres.conf names ${nodeFiles.length} GPUs for this node`);
    return f;
  });
  const devices = new Set<string>();
  const vendors = new Set<GpuVendor>();
  for (const f of files) {
    const v = vendorOf(f);
    if (v) vendors.add(v);
    devices.add(f);
    if (v === 'amd' && /renderD\d+$/.test(f)) {
      const card = cardOf(f, sysRoot);
      if (card && isCharDevice(card)) devices.add(card);
    }
  }
  if (vendors.has('nvidia')) for (const c of NVIDIA_CONTROL) if (isCharDevice(c)) devices.add(c);
  if (vendors.has('amd') && isCharDevice('/dev/kfd')) devices.add('/dev/kfd');
  const local = files.map((_, i) => String(i)).join(',');
  const env: Record<string, string> = {};
  if (files.length) {
    // as Slurm's gres/gpu sets them for the job's tasks, whatever the vendor: with
    // ConstrainDevices the job's GPUs are numbered from 0 (seen: SLURM_STEP_GPUS=1 with
    // CUDA_VISIBLE_DEVICES=0)
    env.CUDA_VISIBLE_DEVICES = local;
    env.ROCR_VISIBLE_DEVICES = local;
    env.GPU_DEVICE_ORDINAL = local;
    // for the NVIDIA Container Toolkit's hook, where the site has it: the host's numbers
    if (vendors.has('nvidia')) env.NVIDIA_VISIBLE_DEVICES = files.map((f) => /(\d+)$/.exec(f)?.[1] ?? '').join(',');
  }
  return { indexes: [...indexes], files, devices: [...devices], env };
}

/** gres.conf's text, or '' where the node has none. */
export function readGresConf(file = '/etc/slurm/gres.conf'): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
