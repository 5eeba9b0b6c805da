// Where the SPANK plugin finds the container a step's tasks join (native task launch):
// RUN_DIR/NODE/tasks/JOB.STEP, root's (the directory is 0700), written by berthd when the step
// starts and removed when it ends. One "key=value" per line, for a few lines of C to read:
//   pid=     host PID of the container's first process
//   start=   its start time (clock ticks since boot, /proc/PID/stat field 22), so that a
//            recycled PID is never joined
//   workdir= where tasks start ('' = the directory srun gave them)
//   container= the container's name, for messages
//   ns=      net or uts, one per line: a namespace of the container's own that tasks join too
//            (--container-unshare); they always join its IPC and mount namespaces
//   env=     NAME=VALUE, one per line: the container's environment (the image's, then berth's);
//            tasks take these over the host's, except the names in --container-env
// A file JOB.name-NAME marks a named container the job keeps after the step (--container-name).
// JOB.job holds the same lines for the job's own container, written when it starts (and again
// at recovery), gone when the job ends: a step that joins that container as it is (the batch
// step of an sbatch --container-image job, the steps of the srun that made the job, an srun naming the job's
// own image and nothing else) reads it without asking berthd. It adds
//   uid=     the job's uid (the step's must be it)
//   digest=  the job's image, repository@sha256:... (an srun's pinned --container-image must name it)
//   warning= what the job's container runs without, one per line: the step's task 0 says it
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-write';
import { type JobId, parseJobId, parseStepId } from '../../shared/ids';

const DOCKER_DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';


/** the locale variables of the host that a container step does not get unless it names them (as with pyxis) */
export const LOCALE_ENV = ['LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'LC_NUMERIC', 'LC_TIME', 'LC_COLLATE', 'LC_MONETARY', 'LC_MESSAGES',
  'LC_PAPER', 'LC_NAME', 'LC_ADDRESS', 'LC_TELEPHONE', 'LC_MEASUREMENT', 'LC_IDENTIFICATION'];
export interface TaskTarget {
  pid: number;
  workdir: string;
  container: string;
  env: readonly string[];
  /** host variables that keep their value (--container-env) */
  keepEnv: readonly string[];
  /** the container's own network and UTS namespaces (--container-unshare), which its tasks join */
  namespaces?: readonly ('net' | 'uts')[];
}

export interface JobTaskTarget extends TaskTarget {
  uid: number;
  digest: string;
  warnings: readonly string[];
}

/** clock ticks since boot at which PID started; 0 when it is gone */
export function processStartTime(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]) || 0;
  } catch {
    return 0;
  }
}

/**
 * The task files of this node. The names are made of ids, and a root process (the SPANK
 * plugin) reads what they hold: every id is parsed here before it becomes part of a name.
 */
export class TaskFiles {
  constructor(readonly dir: string) {}

  private file(jobId: JobId, key: string): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`bad task file name ${jobId}.${key}`);
    return path.join(this.dir, `${jobId}.${key}`);
  }

  /** JOB.STEP, the file a step's tasks read */
  private stepFile(jobId: string, stepId: string): string {
    return this.file(parseJobId(jobId, 'task file'), parseStepId(stepId, 'task file'));
  }

  write(jobId: string, stepId: string, t: TaskTarget): void {
    writeFileAtomic(this.stepFile(jobId, stepId), this.lines(t, []), { mode: 0o600 });
  }

  /** JOB.job: the job's own container, for the steps that join it as it is */
  writeJob(jobId: string, t: JobTaskTarget): void {
    const extra = [`uid=${t.uid}`, `digest=${t.digest}`, ...t.warnings.map((w) => `warning=${w.replace(/\n/g, ' ')}`)];
    writeFileAtomic(this.file(parseJobId(jobId, 'task file'), 'job'), this.lines(t, extra), { mode: 0o600 });
  }

  /** JOB.job goes: the job's steps ask berthd again (the job is ending, or its container is not running) */
  removeJobFile(jobId: string): void {
    rmSync(this.file(parseJobId(jobId, 'task file'), 'job'), { force: true });
  }

  private lines(t: TaskTarget, extra: string[]): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const start = processStartTime(t.pid);
    if (!start) throw new Error(`the container ${t.container} has no running process (pid ${t.pid})`);
    const lines = [`pid=${t.pid}`, `start=${start}`, `workdir=${t.workdir}`, `container=${t.container}`, ...(t.namespaces ?? []).map((n) => `ns=${n}`), ...extra];
    // an image without PATH gets Docker's default, as `docker run` would give it
    if (!t.env.some((kv) => kv.startsWith('PATH='))) lines.push(`env=${DOCKER_DEFAULT_PATH}`);
    const names = new Set<string>();
    for (const kv of t.env) {
      const name = kv.slice(0, kv.indexOf('='));
      if (kv.includes('\n') || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
      names.add(name);
      // a name the task keeps (--container-env, HOME, ...) keeps the image's value where the task has none
      lines.push(`${t.keepEnv.includes(name) ? 'envdefault' : 'env'}=${kv}`);
    }
    // the host's locale stays out unless asked for (an image without that locale warns at every perl or python start)
    for (const name of LOCALE_ENV) if (!names.has(name) && !t.keepEnv.includes(name)) lines.push(`unset=${name}`);
    return lines.join('\n') + '\n';
  }

  read(jobId: string, stepId: string): string | undefined {
    try {
      return readFileSync(this.stepFile(jobId, stepId), 'utf8');
    } catch {
      return undefined;
    }
  }

  remove(jobId: string, stepId: string): void {
    rmSync(this.stepFile(jobId, stepId), { force: true });
  }

  markNamed(jobId: string, name: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(this.file(parseJobId(jobId, 'task file'), `name-${name}`), '', { mode: 0o600 });
  }

  /** every file of the job; true when there was any */
  removeJob(jobId: string): boolean {
    const job = parseJobId(jobId, 'task file');
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.startsWith(`${job}.`));
    } catch {
      return false;
    }
    for (const n of names) rmSync(path.join(this.dir, n), { force: true });
    return names.length > 0;
  }
}
