// A berthd of the benchmark's own (dist/berthd.js, `npm run build` first) against sandbox node
// n1's dockerd: its own node name, run and state directories under /tmp, no authz, so it
// touches nothing the sandbox's agents own. stop() ends it by its pid and removes the dirs.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { agentSockets } from '../../services/shared/paths';
import { node, REPO } from '../../test/support/stack';

export interface OwnBerthd {
  pid: number;
  node: string;
  runDir: string;
  dir: string;
  /** 127.0.0.1:PORT of /metrics, when asked for */
  metrics?: string;
  stop(): Promise<void>;
}

/** A free loopback TCP port (the config takes 1-65535, not 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    }).on('error', reject);
  });
}

export async function startOwnBerthd(name: string, extra: Record<string, unknown> = {}, opts: { metrics?: boolean } = {}): Promise<OwnBerthd> {
  const bin = path.join(REPO, 'dist/berthd.js');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run npm run build first`);
  const dir = mkdtempSync(path.join(os.tmpdir(), `berth-${name}-`));
  const runDir = path.join(dir, 'run');
  const metrics = opts.metrics ? `127.0.0.1:${await freePort()}` : undefined;
  const config = {
    node: name, runDir, stateDir: path.join(dir, 'state'), dockerHost: `unix://${node('n1').dockerSocket}`,
    initBinary: '/usr/local/lib/berth/berth-init', accountingFile: path.join(dir, 'accounting.jsonl'), logFile: path.join(dir, 'berthd.log'),
    logLevel: 'warn', ...(metrics ? { metrics: { listen: metrics } } : {}), ...extra,
  };
  writeFileSync(path.join(dir, 'berthd.json'), JSON.stringify(config));
  const child: ChildProcess = spawn(process.execPath, [bin, '--config', path.join(dir, 'berthd.json')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const admin = agentSockets(runDir, name).admin;
  for (let i = 0; !existsSync(admin); i++) {
    if (child.exitCode !== null || i > 200) {
      child.kill('SIGKILL');
      throw new Error(`berthd ${name} did not start: ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid!, node: name, runDir, dir, metrics,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resident memory (VmRSS) and its peak (VmHWM) of a process, in bytes. */
export function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after the command name (which may hold spaces) start at ") "
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return ticks / clockTicks();
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  // getconf CLK_TCK is 100 on every Linux this runs on; ask once anyway
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}
