// The node's RDMA devices from the configured list: entries may end in a `*` pattern
// (/dev/infiniband/uverbs*); entries that do not exist on this node are skipped.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

function isCharDevice(p: string): boolean {
  try {
    return statSync(p).isCharacterDevice();
  } catch {
    return false;
  }
}

export function expandDevices(patterns: readonly string[]): string[] {
  const found = new Set<string>();
  for (const pattern of patterns) {
    const base = path.basename(pattern);
    if (!base.includes('*')) {
      if (isCharDevice(pattern)) found.add(pattern);
      continue;
    }
    const dir = path.dirname(pattern);
    const re = new RegExp('^' + base.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names.sort()) if (re.test(n) && isCharDevice(path.join(dir, n))) found.add(path.join(dir, n));
  }
  return [...found];
}
