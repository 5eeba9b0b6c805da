// Reads the accounting log back for QueryAccounting: every file (rotated ones first, so
// records come oldest first), filtered, in batches small enough for one gRPC message. The
// files are all opened before the first is read: a rotation during the query renames them
// but the open descriptors still read what was there, so nothing is skipped or read twice.
import { createReadStream, openSync, closeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { BerthError } from '../../shared/errors';
import { accountingFiles } from './accounting-log';
import { ACCOUNTING_FORMAT, type AccountingRecord } from './accounting-record';
import { parseJobId } from '../../shared/ids';

export interface AccountingFilter {
  /** ms since the epoch: records that ended at or after it */
  since?: number;
  /** ms since the epoch: records that started at or before it */
  until?: number;
  jobId?: string;
  user?: string;
  uid?: number;
  jobsOnly?: boolean;
}

function time(text: string, what: string): number | undefined {
  if (text === '') return undefined;
  const t = Date.parse(text);
  if (!Number.isFinite(t)) throw new BerthError('INVALID_REQUEST', `QueryAccounting: ${what} '${text}' is not an RFC 3339 time (e.g. 2026-05-01T12:00:00Z)`);
  return t;
}

/** The request's filter, checked: bad times and job ids are refused with what to send instead. */
export function parseAccountingFilter(req: { since: string; until: string; jobId: string; user: string; uid: number; jobsOnly: boolean }): AccountingFilter {
  const since = time(req.since, 'since');
  const until = time(req.until, 'until');
  if (since !== undefined && until !== undefined && until < since) {
    throw new BerthError('INVALID_REQUEST', `QueryAccounting: until (${req.until}) is before since (${req.since}); swap them`);
  }
  return {
    since, until,
    jobId: req.jobId === '' ? undefined : parseJobId(req.jobId, 'QueryAccounting'),
    user: req.user || undefined,
    uid: req.uid || undefined,
    jobsOnly: req.jobsOnly,
  };
}

export function matches(r: AccountingRecord, f: AccountingFilter): boolean {
  if (f.jobId !== undefined && r.JobID !== f.jobId) return false;
  if (f.uid !== undefined && r.UID !== f.uid) return false;
  if (f.user !== undefined && r.User !== f.user) return false;
  if (f.jobsOnly && r.RecordType !== 'job') return false;
  if (f.since !== undefined && Date.parse(r.End || r.Start) < f.since) return false;
  if (f.until !== undefined && Date.parse(r.Start) > f.until) return false;
  return true;
}

/**
 * Cheap checks on the raw line, so that most lines of a selective query are never parsed.
 * They are exact, not guesses: inside a JSON string value a quote is escaped (\"), so
 * `"JobID":"42"` can only be the key itself.
 */
function mayMatch(line: string, f: AccountingFilter): boolean {
  if (f.jobId !== undefined && !line.includes(`"JobID":"${f.jobId}"`)) return false;
  if (f.user !== undefined && !line.includes(`"User":${JSON.stringify(f.user)}`)) return false;
  if (f.uid !== undefined && !line.includes(`"UID":${f.uid},`) && !line.includes(`"UID":${f.uid}}`)) return false;
  if (f.jobsOnly && !line.includes('"RecordType":"job"')) return false;
  return true;
}

const FORMAT_PREFIX = `{"Format":${ACCOUNTING_FORMAT},`;

export interface QueryStats {
  files: number;
  lines: number;
  matched: number;
  /** lines that were not JSON (a torn write after a crash, a foreign line): skipped */
  skipped: number;
}

/**
 * Yields batches of matching records as their JSON text, each batch at most maxBatchBytes
 * (a single larger record goes alone). Records of the old format (before Format 2) are
 * skipped: they lack the fields every consumer relies on.
 */
export async function* queryAccounting(file: string, keep: number, filter: AccountingFilter, maxBatchBytes = 1 << 20, stats?: QueryStats): AsyncGenerator<string[]> {
  const fds: number[] = [];
  for (const f of accountingFiles(file, keep)) {
    try {
      fds.push(openSync(f, 'r'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        for (const fd of fds) closeSync(fd);
        throw err;
      }
    }
  }
  if (stats) stats.files = fds.length;
  let batch: string[] = [];
  let bytes = 0;
  let input: ReturnType<typeof createReadStream> | undefined;
  try {
    while (fds.length > 0) {
      input = createReadStream('', { fd: fds.shift()!, autoClose: true });
      const lines = createInterface({ input, crlfDelay: Infinity });
      for await (const line of lines) {
        if (stats) stats.lines++;
        if (line === '' || !mayMatch(line, filter)) continue;
        // without a time filter the checks above decided, and a well-formed line of
        // this format goes out unparsed (the writer puts Format first and ends every line)
        const decided = filter.since === undefined && filter.until === undefined
          && line.startsWith(FORMAT_PREFIX) && line.endsWith('}');
        if (!decided) {
          let rec: AccountingRecord;
          try {
            rec = JSON.parse(line) as AccountingRecord;
          } catch {
            if (stats) stats.skipped++;
            continue;
          }
          if (typeof rec !== 'object' || rec === null || typeof rec.Format !== 'number' || !matches(rec, filter)) continue;
        }
        if (stats) stats.matched++;
        if (bytes + line.length > maxBatchBytes && batch.length > 0) {
          yield batch;
          batch = [];
          bytes = 0;
        }
        batch.push(line);
        bytes += line.length;
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    // a consumer that stops early (a cancelled call) leaves the current file open otherwise
    input?.destroy();
    for (const fd of fds) closeSync(fd);
  }
}
