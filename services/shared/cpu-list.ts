// Linux and Slurm CPU lists ("0-3,8,10-11"): the form of cpuset.cpus, cpuset.mems, Slurm's
// CPU_IDs and /sys/devices/system/node/nodeN/cpulist.

/** The ids of a CPU list, ascending and without repeats; throws on anything but digits, ',' and '-'. */
export function parseCpuList(list: string): number[] {
  const text = list.trim();
  if (text === '') return [];
  const ids = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    if (!m) throw new Error(`"${list}" is not a CPU list (expected e.g. 0-3,8)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`"${list}" is not a CPU list: the range ${part} runs backwards`);
    for (let n = lo; n <= hi; n++) ids.add(n);
  }
  return [...ids].sort((a, b) => a - b);
}

/** The shortest list form of ids: [0,1,2,3,8] → "0-3,8". */
export function formatCpuList(ids: Iterable<number>): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Every id of inner is in outer; false when either is not a CPU list (what a request asks may be anything). */
export function cpuListWithin(inner: string, outer: string): boolean {
  try {
    const allowed = new Set(parseCpuList(outer));
    return parseCpuList(inner).every((id) => allowed.has(id));
  } catch {
    return false;
  }
}
