// Mount options in a job user's create body that would reach past the container, whatever the
// policy file says: shared bind propagation (a mount made in the container would appear on the
// host, and the host's in other containers), and tmpfs options that would allow setuid programs
// or device files, give the tmpfs another owner, or size it past the job's memory. Judged on the
// request (Binds suffixes, Mounts[].BindOptions.Propagation, HostConfig.Tmpfs, Mounts of type
// tmpfs) and again on the container as dockerd stored it (site-limits.ts).
import { BodyNumber, BodyObject, type BodyItem, type BodyValue, display } from '../docker-request/body';
import type { PolicyContext } from './policy-types';

/** propagations that carry mounts from the container to the host */
const SHARED = new Set(['shared', 'rshared']);

/** tmpfs options a user may give (mount(8) tmpfs and the generic ones); key=value ones by key */
const TMPFS_FLAGS = new Set(['rw', 'ro', 'nosuid', 'nodev', 'noexec', 'exec', 'noatime', 'atime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'nodiratime', 'diratime', 'tmpcopyup', 'notmpcopyup']);
const TMPFS_KEYS = new Set(['size', 'nr_blocks', 'nr_inodes', 'mode', 'uid', 'gid']);

type Add = (field: string, reason: string) => void;

const PROPAGATION_FIX = 'mounts made in the container would reach the host; use rslave (the host\'s mounts reach the container) or leave the propagation out';

/** the options of a Binds entry SRC:DST:OPTS ('' when it has none) */
function bindOptions(text: string): string[] {
  const parts = text.split(':');
  return parts.length >= 3 ? parts[parts.length - 1]!.split(',').map((o) => o.trim().toLowerCase()) : [];
}

function tmpfsBytes(value: string): number | undefined {
  const m = /^([0-9]+)([kKmMgG%]?)$/.exec(value);
  if (!m) return undefined;
  if (m[2] === '%') return Number.NaN;
  return Number(m[1]) * 1024 ** ({ '': 0, k: 1, m: 2, g: 3 }[m[2]!.toLowerCase() as ''] ?? 0);
}

/** one tmpfs option, judged against the job; undefined when allowed */
function tmpfsOptionProblem(opt: string, ctx: PolicyContext): string | undefined {
  const o = opt.trim();
  if (o === '') return undefined;
  const eq = o.indexOf('=');
  const key = (eq < 0 ? o : o.slice(0, eq)).toLowerCase();
  const value = eq < 0 ? '' : o.slice(eq + 1);
  if (eq < 0) {
    if (key === 'suid' || key === 'dev') return `'${o}' would allow ${key === 'suid' ? 'setuid programs' : 'device files'} in it`;
    return TMPFS_FLAGS.has(key) ? undefined : `'${o}' is not an option berth lets a tmpfs have (${[...TMPFS_FLAGS].join(', ')}, ${[...TMPFS_KEYS].map((k) => `${k}=`).join(', ')})`;
  }
  if (!TMPFS_KEYS.has(key)) return `'${o}' is not an option berth lets a tmpfs have (${[...TMPFS_KEYS].map((k) => `${k}=`).join(', ')} and flags such as ro, noexec)`;
  const job = ctx.job;
  if (key === 'uid' && job && value !== String(job.uid)) return `'${o}': the tmpfs would belong to uid ${value}, not to you (uid=${job.uid} or leave it out)`;
  if (key === 'gid' && job && ![job.gid, ...(job.groupIds ?? [])].map(String).includes(value)) return `'${o}': the tmpfs would belong to group ${value}, which is not one of yours (${[job.gid, ...(job.groupIds ?? [])].join(', ')})`;
  if (key === 'size' && job && job.memoryBytes > 0) {
    const bytes = tmpfsBytes(value);
    if (bytes === undefined || Number.isNaN(bytes) || bytes <= 0 || bytes > job.memoryBytes) return `'${o}': a tmpfs's size is bytes (k, m, g) from 1 to the job's memory on this node, ${job.memoryBytes}`;
  }
  return undefined;
}

function tmpfsSizeProblem(bytes: number, ctx: PolicyContext): string | undefined {
  const mem = ctx.job?.memoryBytes ?? 0;
  return mem > 0 && bytes > mem ? `size ${bytes} is more than the job's memory on this node, ${mem}` : undefined;
}

export function mountOptionViolations(items: { binds: BodyItem[]; mounts: BodyItem[]; tmpfs: BodyItem[] }, ctx: PolicyContext, add: Add): void {
  for (const i of items.binds) {
    if (typeof i.value !== 'string') continue;
    const shared = bindOptions(i.value).find((o) => SHARED.has(o));
    if (shared) add(i.path, `${i.path}=${display(i.value)} is not allowed: ${shared} propagation: ${PROPAGATION_FIX}`);
  }
  for (const i of items.mounts) {
    if (!(i.value instanceof BodyObject)) continue;
    const bind = i.value.get('BindOptions')?.value;
    const propagation = bind instanceof BodyObject ? bind.get('Propagation')?.value : undefined;
    if (typeof propagation === 'string' && SHARED.has(propagation.toLowerCase())) {
      add(`${i.path}.BindOptions.Propagation`, `${i.path}.BindOptions.Propagation=${display(propagation)} is not allowed: ${PROPAGATION_FIX}`);
    }
    const tmpfs = i.value.get('TmpfsOptions')?.value;
    if (!(tmpfs instanceof BodyObject)) continue;
    const size = tmpfs.get('SizeBytes')?.value;
    const sizeProblem = size instanceof BodyNumber ? tmpfsSizeProblem(size.value, ctx) : undefined;
    if (sizeProblem) add(`${i.path}.TmpfsOptions.SizeBytes`, `${i.path}.TmpfsOptions.SizeBytes=${display(size)} is not allowed: ${sizeProblem}`);
    const options = tmpfs.get('Options')?.value;
    for (const opt of Array.isArray(options) ? options : []) {
      // [["noexec"], ["size", "1g"]]: a flag, or a key and its value
      const pair = Array.isArray(opt) ? opt.filter((x): x is string => typeof x === 'string') : [];
      const text = pair.length >= 2 ? `${pair[0]}=${pair[1]}` : pair[0] ?? (typeof opt === 'string' ? opt : display(opt));
      const problem = tmpfsOptionProblem(text, ctx);
      if (problem) add(`${i.path}.TmpfsOptions.Options`, `${i.path}.TmpfsOptions.Options ${problem}`);
    }
  }
  for (const i of items.tmpfs) {
    if (!(i.value instanceof BodyObject)) continue;
    for (const target of i.value.keys) {
      const opts: BodyValue | undefined = i.value.get(target)?.value;
      if (typeof opts !== 'string') continue;
      for (const opt of opts.split(',')) {
        const problem = tmpfsOptionProblem(opt, ctx);
        if (problem) add(`${i.path}.${target}`, `${i.path}[${target}]=${display(opts)} is not allowed: ${problem}`);
      }
    }
  }
}
