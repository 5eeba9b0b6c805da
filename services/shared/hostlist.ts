// Slurm host lists: "n[1-3,7],gpu[01-02],login" → n1 n2 n3 n7 gpu01 gpu02 login.
// Zero-padded ranges keep their width, as Slurm writes them.
export function expandHostlist(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  const items: string[] = [];
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === ',' && depth === 0) {
      items.push(list.slice(start, i));
      start = i + 1;
    }
  }
  items.push(list.slice(start));
  for (const item of items.map((s) => s.trim()).filter(Boolean)) out.push(...expandOne(item));
  return out;
}

function expandOne(item: string): string[] {
  const m = item.match(/^([^[]*)\[([^\]]+)\](.*)$/);
  if (!m) return [item];
  const [, prefix = '', ranges = '', rest = ''] = m;
  const tails = expandOne(rest);
  const out: string[] = [];
  for (const r of ranges.split(',')) {
    const [lo = '', hi = lo] = r.split('-');
    const width = lo.length;
    for (let n = Number(lo); n <= Number(hi); n++) {
      for (const t of tails) out.push(prefix + String(n).padStart(width, '0') + t);
    }
  }
  return out;
}
