// The node's accounting log: JSON lines, one record per job and per step, appended when the
// job ends. Each append is one write(2) on a file opened with O_APPEND, so concurrent
// writers never interleave or split a record. berthd rotates the log itself by size
// (FILE → FILE.1 → … → FILE.keep, the oldest dropped): the size check, the renames and the
// write happen in one synchronous call, which nothing else in the process can run between,
// and a job's records always land together in one file. The log is reopened by name for
// every append, so an outside rename (logrotate without copytruncate) is also safe.
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
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

  /**
   * Whether the job's record (JobID + NodeList + Start, the record's key) is among the last
   * `tailBytes` of the current file or of FILE.1: what an epilogue cut off by a restart of
   * berthd may have written just before it. Only that rare path asks.
   */
  hasJobRecord(key: { jobId: string; node: string; start: string }, tailBytes = 4 * 1024 * 1024): boolean {
    const needle = `"JobID":${JSON.stringify(key.jobId)}`;
    for (const file of [this.file, `${this.file}.1`]) {
      let text: string;
      try {
        text = tail(file, tailBytes);
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        if (!line.includes(needle)) continue;
        try {
          const r = JSON.parse(line) as Record<string, unknown>;
          if (r.RecordType === 'job' && r.JobID === key.jobId && r.NodeList === key.node && r.Start === key.start) return true;
        } catch {
          // the first line of a tail is usually cut
        }
      }
    }
    return false;
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

function tail(file: string, bytes: number): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, size - len + got);
      if (n <= 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
