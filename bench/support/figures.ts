// What the benchmarks share: the median they print, and a timed command.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** the median (the mean of the middle two for an even count) */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** runs argv in alice's home; its wall time in ms; throws with its stderr when it fails */
export function sh(argv: string[], env?: Record<string, string>): number {
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { env: env ?? process.env, encoding: 'utf8', cwd: '/home/alice' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}
