// The node's accounting log: JSON lines, one record per job and per step, appended when the
// job ends. Each append is one write(2) on a file opened with O_APPEND, so concurrent
// writers never interleave or split a record. berthd rotates the log itself by size
// (FILE → FILE.1 → … → FILE.keep, the oldest dropped): the size check, the renames and the
// write happen in one synchronous call, which nothing else in the process can run between,
// and a job's records always land together in one file. The log is reopened by name for
// every append, so an outside rename (logrotate without copytruncate) is also safe.
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { AccountingRecord } from './accounting-record';

export interface RotationPolicy {
  /** rotate before an append would take the file past this many bytes; 0 = never */
  maxBytes: number;
  /** rotated files kept beside the current one: FILE.1 (newest) … FILE.keep (oldest) */
  keep: number;
}

export const NO_ROTATION: RotationPolicy = { maxBytes: 0, keep: 0 };

/** The log's files, oldest first: FILE.keep … FILE.1, FILE (the ones that exist). */
export function accountingFiles(file: string, keep: number): string[] {
  const out: string[] = [];
  for (let i = keep; i >= 1; i--) out.push(`${file}.${i}`);
  out.push(file);
  return out;
}

export class AccountingLog {
  constructor(readonly file: string, readonly rotation: RotationPolicy = NO_ROTATION) {
    mkdirSync(path.dirname(file), { recursive: true });
  }

  /** Appends records in one write; rotates first when the file would outgrow maxBytes. */
  append(records: AccountingRecord | AccountingRecord[]): void {
    const list = Array.isArray(records) ? records : [records];
    if (list.length === 0) return;
    const data = Buffer.from(list.map((r) => JSON.stringify(r) + '\n').join(''));
    let fd = openSync(this.file, 'a', 0o640);
    try {
      const { maxBytes } = this.rotation;
      const size = fstatSync(fd).size;
      if (maxBytes > 0 && size > 0 && size + data.length > maxBytes) {
        closeSync(fd);
        fd = -1;
        this.rotate();
        fd = openSync(this.file, 'a', 0o640);
      }
      // a short write to a regular file means a full disk: say so rather than leave half a line
      const written = writeSync(fd, data);
      if (written !== data.length) throw new Error(`accounting log ${this.file}: only ${written} of ${data.length} bytes written (disk full?)`);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  /** FILE.(keep-1) → FILE.keep, …, FILE → FILE.1; with keep 0 the old file is dropped. */
  private rotate(): void {
    const { keep } = this.rotation;
    if (keep === 0) {
      rmSync(this.file, { force: true });
      return;
    }
    rmSync(`${this.file}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    renameSync(this.file, `${this.file}.1`);
  }

  /** Bytes in the current file (0 when it does not exist yet). */
  currentSize(): number {
    try {
      return statSync(this.file).size;
    } catch {
      return 0;
    }
  }
}
