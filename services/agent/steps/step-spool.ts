// The start and end of the native steps that joined their job's container without asking
// berthd (task-files.ts, JOB.job): the SPANK plugin leaves them in RUN_DIR/NODE/step-spool/
// (root's, 0700), one file per step and node, JOB.STEP, written whole (a temporary file
// starting with '.' renamed over it): first with the step's start, then once more with its end
// too. The step does not wait for berthd either time. berthd reads the directory when it starts
// (records written while it was away) and on every change (fs.watch: inotify, nothing wakes an
// idle berthd), records the step in its job's ledger, and removes the file once the end is in.
//
// One "key=value" per line, as a few lines of C write it (scripts/native/berth_spank_tasks.c):
//   job=       the job id          step=     the step id (a number or batch); the file's name is JOB.STEP
//   start_ms=  when the step started on this node (milliseconds since the epoch)
//   argv=      the command, arguments joined by the unit separator (0x1f); \ and newline escaped as \\ and \n
//   end_ms=    when the node's last task ended (only in the end record)
//   status=    the wait status of the node's first failing task, else of its last ('' = none given)
// Unknown keys are ignored. A file that is not a regular file of root's that only root may
// write is left alone with a warning; a malformed one is removed with a warning.
import { closeSync, constants, type FSWatcher, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, rmSync, watch } from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../../shared/errors';
import { isJobId, type JobId, parseJobId, parseStepId, type StepId } from '../../shared/ids';
import { outcomeOfWaitStatus, type StepOutcome } from '../../shared/wait-status';
import type { StepLedger } from '../jobs/step-ledger';
import type { JobTable } from '../jobs/job-table';
import type { Logger } from '../logger';

/** a record is a few lines; the plugin's argv is at most 4 KiB */
const MAX_BYTES = 65_536;
const NAME = /^[0-9]+\.([0-9]+|batch)$/;

export interface SpooledStep {
  jobId: JobId;
  stepId: StepId;
  argv: string[];
  startMs: number;
  /** present once the step has ended on the node */
  end?: { atMs: number; outcome?: StepOutcome };
}

const escape = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const unescape = (s: string): string => s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));

/** the file's text for a record, as the plugin writes it */
export function formatSpooledStep(s: { jobId: string; stepId: string; argv: readonly string[]; startMs: number; end?: { atMs: number; waitStatus?: number } }): string {
  const lines = [`job=${s.jobId}`, `step=${s.stepId}`, `start_ms=${s.startMs}`, `argv=${escape(s.argv.join('\x1f'))}`];
  if (s.end) lines.push(`end_ms=${s.end.atMs}`, `status=${s.end.waitStatus ?? ''}`);
  return lines.join('\n') + '\n';
}

/** the record in file NAME; throws, saying what is wrong, for a malformed one */
export function parseSpooledStep(name: string, text: string): SpooledStep {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`line '${line.slice(0, 80)}' is not key=value`);
    kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const jobId = parseJobId(kv.get('job') ?? '', 'spooled step');
  const stepId = parseStepId(kv.get('step') ?? '', 'spooled step');
  if (name !== `${jobId}.${stepId}`) throw new Error(`it holds step ${jobId}.${stepId}, not the one its name says`);
  const ms = (key: string): number => {
    const v = kv.get(key) ?? '';
    if (!/^[0-9]{1,15}$/.test(v)) throw new Error(`${key} '${v.slice(0, 40)}' is not a time in milliseconds`);
    return Number(v);
  };
  const argvText = unescape(kv.get('argv') ?? '');
  // as the StepPrologue request reads it (services/cli/hook.ts)
  const argv = argvText.split('\x1f').filter((a, i) => a !== '' || i > 0);
  const rec: SpooledStep = { jobId, stepId, argv, startMs: ms('start_ms') };
  if (kv.has('end_ms')) {
    const outcome = outcomeOfWaitStatus(kv.get('status') ?? '');
    rec.end = { atMs: ms('end_ms'), ...(outcome ? { outcome } : {}) };
  }
  return rec;
}

export interface StepSpoolDeps {
  dir: string;
  ledger: Pick<StepLedger, 'startNative' | 'endNative' | 'isOpen'>;
  table: Pick<JobTable, 'get'>;
  log: Logger;
  /** whose files count: root's (berthd and slurmstepd run as root) */
  ownerUid?: number;
}

export class StepSpool {
  private watcher?: FSWatcher;
  private readonly owner: number;

  constructor(private readonly d: StepSpoolDeps) {
    this.owner = d.ownerUid ?? 0;
  }

  /** Makes the directory (root's, 0700) and follows its changes from now on. */
  watch(): void {
    if (this.watcher) return;
    try {
      mkdirSync(this.d.dir, { recursive: true, mode: 0o700 });
      const st = lstatSync(this.d.dir);
      if (!st.isDirectory() || st.uid !== this.owner || (st.mode & 0o022) !== 0) throw new Error('not a directory of root\'s that only root may write');
      this.watcher = watch(this.d.dir, (_event, name) => (name ? this.take(String(name)) : this.drain()));
      this.watcher.on('error', (err) => this.d.log.warn('stopped following the step spool', { dir: this.d.dir, error: errorMessage(err) }));
    } catch (err) {
      this.d.log.error('cannot follow the step spool: the native steps that joined their job\'s container are recorded only when berthd starts or their job ends', { dir: this.d.dir, error: errorMessage(err) });
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** Every record there now (at start: the ones written while berthd was away); how many were read. */
  drain(jobId?: string): number {
    let names: string[];
    try {
      names = readdirSync(this.d.dir);
    } catch {
      return 0;
    }
    let n = 0;
    for (const name of names.sort()) {
      if (jobId !== undefined && !name.startsWith(`${jobId}.`)) continue;
      if (this.take(name)) n++;
    }
    return n;
  }

  /** The job has ended: what is left of its steps' records goes (a start whose end never came). */
  forgetJob(jobId: string): void {
    if (!isJobId(jobId)) return;
    let names: string[];
    try {
      names = readdirSync(this.d.dir);
    } catch {
      return;
    }
    for (const name of names) if (name.startsWith(`${jobId}.`) && NAME.test(name)) rmSync(path.join(this.d.dir, name), { force: true });
  }

  /** Reads and records file NAME; true when it held a record. Never throws. */
  take(name: string): boolean {
    if (name.startsWith('.')) return false; // a record being written
    const file = path.join(this.d.dir, name);
    const log = this.d.log.child({ file });
    if (!NAME.test(name)) {
      log.warn('ignoring a file in the step spool that is not named JOB.STEP');
      return false;
    }
    let text: string;
    try {
      const read = this.read(file);
      if (read === undefined) return false;
      text = read;
    } catch (err) {
      log.warn('ignoring a file in the step spool', { error: errorMessage(err) });
      return false;
    }
    let rec: SpooledStep;
    try {
      rec = parseSpooledStep(name, text);
    } catch (err) {
      log.warn('removing a malformed record from the step spool', { error: errorMessage(err) });
      rmSync(file, { force: true });
      return false;
    }
    try {
      this.record(rec);
    } catch (err) {
      log.warn('could not record a spooled step', { job: rec.jobId, step: rec.stepId, error: errorMessage(err) });
      return false;
    }
    if (rec.end || !this.d.table.get(rec.jobId)) rmSync(file, { force: true });
    return true;
  }

  private record(rec: SpooledStep): void {
    const { ledger } = this.d;
    // a job berthd no longer holds has been accounted for: the record came too late
    if (!this.d.table.get(rec.jobId)) return;
    if (!ledger.isOpen(rec.jobId, rec.stepId)) ledger.startNative(rec.jobId, rec.stepId, rec.argv, new Date(rec.startMs));
    if (rec.end) ledger.endNative(rec.jobId, rec.stepId, rec.end.outcome, new Date(rec.end.atMs));
  }

  /** the file's text; undefined when it is gone; throws when it is not a regular file of root's that only root may write */
  private read(file: string): string | undefined {
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new Error('it is a symbolic link');
      throw err;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.uid !== this.owner || (st.mode & 0o022) !== 0) throw new Error('not a regular file of root\'s that only root may write');
      if (st.size > MAX_BYTES) throw new Error(`${st.size} bytes, more than a record holds`);
      const buf = Buffer.alloc(MAX_BYTES);
      let len = 0;
      for (let r; len < MAX_BYTES && (r = readSync(fd, buf, len, MAX_BYTES - len, null)) > 0;) len += r;
      return buf.subarray(0, len).toString('utf8');
    } finally {
      closeSync(fd);
    }
  }
}
