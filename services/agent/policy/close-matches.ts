// "Did you mean" for misspelt action names, keys and fields in policy files.
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** Up to five candidates close to `word`: few edits apart, or containing it. */
export function closeMatches(word: string, candidates: Iterable<string>): string[] {
  const list = [...new Set(candidates)];
  const w = word.toLowerCase();
  const sameButCase = list.filter((c) => c.toLowerCase() === w);
  if (sameButCase.length) return sameButCase;
  const scored: [string, number][] = [];
  for (const c of list) {
    const d = distance(w, c.toLowerCase());
    if (d <= Math.max(2, Math.floor(w.length / 6)) || (w.length >= 4 && c.toLowerCase().includes(w))) scored.push([c, d]);
  }
  return scored.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0])).slice(0, 5).map(([c]) => c);
}
