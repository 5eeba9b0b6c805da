// One berthd per node. A second one (an admin's `berthd --config ...` by hand, a unit started
// twice) would replace the running one's sockets and leave the node's dockerd refusing every
// request, so berthd takes this lock before it touches any socket, file or container:
// stateDir/berthd.lock holds the holder's pid and process start time (a pid alone could be
// reused after a crash). A lock whose holder is gone is taken over.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

export interface LockHolder {
  pid: number;
  /** field 22 of /proc/PID/stat: clock ticks since boot */
  startTime: string;
}

/**
 * the start time of a live process, or undefined when there is none. A zombie is none: a
 * berthd killed with SIGKILL stays one until its parent reaps it (at once under systemd, but
 * an init that reaps slowly kept a restart out for its whole wait).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** outside the catalogue: met only at start (berthd exits with the message), never an RPC's answer */
export class NodeLockedError extends Error {
  override readonly name = 'NodeLockedError';
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const [pid, startTime] = readFileSync(file, 'utf8').trim().split(/\s+/);
    const n = Number(pid);
    return Number.isInteger(n) && n > 0 && startTime ? { pid: n, startTime } : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the node's lock or throws NodeLockedError naming the live holder; returns its release. */
export function takeNodeLock(stateDir: string, node: string, self = process.pid): () => void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, 'berthd.lock');
  const mine = `${self} ${processStartTime(self) ?? '0'}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readHolder(file);
      if (holder && holder.pid !== self && processStartTime(holder.pid) === holder.startTime) {
        throw new NodeLockedError(`node ${node} already has a running berthd (pid ${holder.pid}, lock ${file}); stop it first (systemctl stop berthd), or start this one with another --node and --state-dir`);
      }
      rmSync(file, { force: true }); // a dead holder's (or a half-written) lock
      continue;
    }
    try {
      writeSync(fd, mine);
    } finally {
      closeSync(fd);
    }
    return () => {
      if (readHolder(file)?.pid === self) rmSync(file, { force: true });
    };
  }
  throw new NodeLockedError(`could not take the lock ${file} for node ${node}: another berthd is starting at the same moment`);
}
