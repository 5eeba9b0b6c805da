// test/native/confine-probe.c, built from this tree with the plugin's own berth_confine.c:
// reads a process's seccomp filters as the SPANK plugin copies them, and takes a copy on as a
// native task does. Built once per test process; the tests run it as root.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO } from './stack';

let built: string | undefined;

export function confineProbe(): string {
  if (built) return built;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-confine-probe-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'confine-probe');
  const native = path.join(REPO, 'scripts/native');
  execFileSync('gcc', ['-O2', '-Wall', '-Werror', `-I${native}`, '-o', out, path.join(REPO, 'test/native/confine-probe.c'), path.join(native, 'berth_confine.c')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  built = out;
  return out;
}

export interface FilterDump {
  count: number;
  capBnd: string;
  /** "len flags hex" per filter, index 0 (the oldest) first */
  filters: string[];
}

/** the seccomp filters of pid as the plugin copies them; throws with the probe's reason */
export function dumpFilters(pid: number): FilterDump {
  const r = spawnSync(confineProbe(), ['dump', String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`confine-probe dump ${pid}: ${r.stderr.trim()}`);
  const [head, ...rest] = r.stdout.trim().split('\n');
  const m = head!.match(/^filters=(\d+) capbnd=([0-9a-f]{16}) /);
  if (!m) throw new Error(`confine-probe dump ${pid} said: ${r.stdout.slice(0, 200)}`);
  return { count: Number(m[1]), capBnd: m[2]!, filters: rest.map((l) => l.replace(/^filter=\d+ /, '')) };
}

/** the lines of /proc/PID/status that say how a process is confined, as NAME → value */
export const CONFINEMENT_FIELDS = ['Seccomp', 'Seccomp_filters', 'NoNewPrivs', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'] as const;
export const PRINT_CONFINEMENT = `grep -E '^(${CONFINEMENT_FIELDS.join('|')}):' /proc/self/status`;

export function confinementOf(text: string, prefix = ''): Record<string, string> {
  const re = new RegExp(`^${prefix}(${CONFINEMENT_FIELDS.join('|')}):\\s+(\\S+)$`, 'gm');
  return Object.fromEntries([...text.matchAll(re)].map((m) => [m[1]!, m[2]!]));
}

/**
 * runs both processes' filter stacks (or an empty one: 'none') over every syscall number of
 * x86_64, x32 and i386 with sample arguments: how many inputs, and on how many they answer
 * differently. runc compiles a container's filter anew for every process it starts, and the
 * order of its architecture checks varies between them, so the bytes are no measure.
 */
export function compareFilters(pid: number, other: number | 'none'): { inputs: number; differ: number; text: string } {
  const r = spawnSync(confineProbe(), ['compare', String(pid), String(other)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`confine-probe compare ${pid} ${other}: ${r.stderr.trim()}`);
  const m = r.stdout.match(/^inputs=(\d+) differ=(\d+)$/m);
  if (!m) throw new Error(`confine-probe compare said: ${r.stdout.slice(0, 300)}`);
  return { inputs: Number(m[1]), differ: Number(m[2]), text: r.stdout };
}
