// The sandbox's own berthd processes, killed and started again as systemd would (Restart=always),
// for the fault drills: started as scripts/sandbox.d/berthd.sh's start_bg does (own session, in /,
// output appended to berthd.out, pid in RUN_DIR/NODE/berthd.pid), and their JSON logs read from
// an offset. Tests that stop one must start it again before they end (ensureBerthd in after()).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { node } from './stack';
import { run } from './slurm';

const BERTHD = '/usr/local/sbin/berthd';
export const pidFile = (n: string): string => `/run/berth-sandbox/${n}/berthd.pid`;

/** the process exists and is not a zombie (a killed daemon not yet reaped still has a pid) */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** the pid of node n's running sandbox berthd (its pid file, checked against its command line), or undefined */
export function berthdPid(n: string): number | undefined {
  if (!existsSync(pidFile(n))) return undefined;
  const pid = Number(readFileSync(pidFile(n), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  return cmd.includes('--config') && cmd.includes(node(n).berthdConfig) ? pid : undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** polls fn every everyMs without blocking the event loop (streams keep flowing meanwhile) */
export async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 60_000, everyMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** sends signal to node n's berthd and waits until it is gone; returns when it died (ms) */
export async function stopBerthd(n: string, signal: 'SIGKILL' | 'SIGTERM'): Promise<number> {
  const pid = berthdPid(n);
  if (pid === undefined) throw new Error(`sandbox berthd ${n} is not running`);
  process.kill(pid, signal);
  await until(`berthd ${n} (pid ${pid}) gone after ${signal}`, () => !alive(pid), 20_000, 10);
  return Date.now();
}

/** starts node n's berthd (not waiting); returns its pid */
export function startBerthd(n: string): number {
  const nd = node(n);
  const out = openSync(nd.logs.berthdOutput!, 'a');
  const child = spawn(BERTHD, ['--config', nd.berthdConfig], { cwd: '/', stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  child.unref();
  writeFileSync(pidFile(n), `${child.pid}\n`);
  return child.pid!;
}

/** whether berth status says node n's berthd is serving */
export function serving(n: string): boolean {
  const r = run('berth', ['status', '--node', n, '--json']);
  if (r.code !== 0) return false;
  const doc = JSON.parse(r.stdout) as { nodes: { result?: { state: string } }[] };
  return /SERVING|DRAINING/.test(doc.nodes[0]?.result?.state ?? '');
}

export async function waitServing(n: string, timeoutMs = 60_000): Promise<number> {
  await until(`berthd ${n} serving`, () => serving(n), timeoutMs, 100);
  return Date.now();
}

/** after a drill: every node's berthd running again */
export async function ensureBerthd(nodes: string[]): Promise<void> {
  for (const n of nodes) if (berthdPid(n) === undefined) startBerthd(n);
  for (const n of nodes) await waitServing(n);
}

export interface LogLine {
  timestamp: string;
  message: string;
  [k: string]: unknown;
}

/** node n's berthd log from now on */
export class BerthdLog {
  private offset: number;
  readonly file: string;

  constructor(n: string) {
    this.file = node(n).logs.berthd!;
    this.offset = existsSync(this.file) ? statSync(this.file).size : 0;
  }

  /** the JSON lines written since this was made */
  lines(): LogLine[] {
    if (!existsSync(this.file)) return [];
    const size = statSync(this.file).size;
    if (size <= this.offset) return [];
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(size - this.offset);
      readSync(fd, buf, 0, buf.length, this.offset);
      return buf.toString('utf8').split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
        try {
          return [JSON.parse(l) as LogLine];
        } catch {
          return [];
        }
      });
    } finally {
      closeSync(fd);
    }
  }

  find(pred: (l: LogLine) => boolean): LogLine | undefined {
    return this.lines().find(pred);
  }
}
