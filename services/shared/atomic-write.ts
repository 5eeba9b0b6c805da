// One way to replace a file so that a reader (berthd after a crash, slurmstepd's plugin, runc)
// sees the old content or the new, never half of one: write a temporary file beside it, set its
// mode, optionally fsync, then rename it over the target. The temporary name carries the pid and
// a counter, so concurrent writers in one process and a stale file of a crashed one never clash.
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

let seq = 0;

export interface AtomicWriteOptions {
  /** the file's mode, whatever the umask (default 0600) */
  mode?: number;
  /** flush to disk before the rename: for records that must survive a power cut */
  fsync?: boolean;
}

export function writeFileAtomic(file: string, data: string | Buffer, opts: AtomicWriteOptions = {}): void {
  const mode = opts.mode ?? 0o600;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${seq++}.tmp`);
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fchmodSync(fd, mode);
    if (opts.fsync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
