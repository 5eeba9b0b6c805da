// Epilogs that could not reach berthd. The epilog hook retries through an agent restart; when
// berthd stays unreachable for the whole retry window it leaves one small record per job in
// RUN_DIR/NODE/epilog-spool/JOB.json and exits 0, so that Slurm does not drain the node for an
// agent that is merely away. berthd settles each record when it is back (at start, before it
// serves, and in every orphan sweep): it ends the job there as the epilogue would, its
// accounting marked SettledLate, and deletes the record.
//
// The spool is under runDir, not stateDir: the hook knows runDir (BERTH_RUN_DIR or /run/berth)
// and not berthd's config, and records must outlive berthd, not the node. runDir is a tmpfs on
// most nodes, so a reboot loses them; the job's checkpoint (stateDir) survives and berthd's
// reconcile at start ends the job anyway once Slurm says it no longer runs there.
//
// The directory is root's, mode 0700; a directory of another owner, a looser mode or a symlink
// is refused (nobody but root may make berthd end a job). Kept free of heavy imports: the
// epilog hook loads it.
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './atomic-write';
import { isJobId } from './ids';

export interface SpooledEpilog {
  jobId: string;
  node: string;
  /** when the epilog began (RFC 3339): the job's end, as accounting records it */
  time: string;
  /** why berthd could not be reached */
  reason: string;
}

const FILE = /^([0-9]+)\.json$/;

export function epilogSpoolDir(runDir: string, node: string): string {
  return path.join(runDir, node, 'epilog-spool');
}

function myUid(): number {
  return process.getuid?.() ?? 0;
}

/** Makes the spool directory if it is missing, then checks it is a private directory of ours. */
export function ensureSpoolDir(dir: string): void {
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  checkSpoolDir(dir);
}

function checkSpoolDir(dir: string): void {
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a symlink or a file); remove it: berth's epilog spool must be a directory of root's, mode 0700`);
  if (st.uid !== myUid()) throw new Error(`${dir} belongs to uid ${st.uid}, not ${myUid()}; remove it: berth's epilog spool must be a directory of root's, mode 0700`);
  if ((st.mode & 0o077) !== 0) throw new Error(`${dir} has mode ${(st.mode & 0o777).toString(8)}; berth's epilog spool must be mode 0700: chmod 700 ${dir}`);
}

/** Writes (atomically, mode 0600) the record of an epilog that could not reach berthd; returns its file. */
export function spoolEpilog(dir: string, rec: SpooledEpilog): string {
  if (!isJobId(rec.jobId)) throw new Error(`job id '${rec.jobId}' is not a Slurm job id`);
  ensureSpoolDir(dir);
  const file = path.join(dir, `${rec.jobId}.json`);
  writeFileAtomic(file, JSON.stringify(rec) + '\n', { mode: 0o600, fsync: true });
  return file;
}

/** The records in the spool, oldest first; files that are not records are named in `bad` and left alone. */
export function readSpooledEpilogs(dir: string): { records: SpooledEpilog[]; bad: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], bad: [] };
    throw err;
  }
  checkSpoolDir(dir);
  const records: SpooledEpilog[] = [];
  const bad: string[] = [];
  for (const name of names) {
    const m = FILE.exec(name);
    if (!m) {
      if (!name.endsWith('.tmp')) bad.push(name);
      continue;
    }
    const file = path.join(dir, name);
    try {
      const st = lstatSync(file);
      if (!st.isFile() || st.uid !== myUid()) throw new Error('not a regular file of ours');
      const rec = JSON.parse(readFileSync(file, 'utf8')) as Partial<SpooledEpilog>;
      if (rec.jobId !== m[1] || typeof rec.time !== 'string' || !Number.isFinite(Date.parse(rec.time))) throw new Error('not an epilog record');
      records.push({ jobId: m[1]!, node: String(rec.node ?? ''), time: rec.time, reason: String(rec.reason ?? '') });
    } catch {
      bad.push(name);
    }
  }
  records.sort((a, b) => Date.parse(a.time) - Date.parse(b.time) || Number(a.jobId) - Number(b.jobId));
  return { records, bad };
}

export function removeSpooledEpilog(dir: string, jobId: string): void {
  if (!isJobId(jobId)) return;
  rmSync(path.join(dir, `${jobId}.json`), { force: true });
}
