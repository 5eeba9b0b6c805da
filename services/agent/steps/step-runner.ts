// Runs one step (a command) in a job's container through docker exec, wrapped by
// berth-init so that the step is the leader of its own process group: forwarded signals and
// the kill on client loss reach its whole process tree.
import type { Duplex } from 'node:stream';
import { constants } from 'node:os';
import { BerthError } from '../../shared/errors';
import { INIT_PATH } from '../containers/job-container-spec';
import type { ContainerEngine, ExecEngine, ExecHandle } from '../docker/engine';
import { engineMessage } from '../docker/engine';
import type { JobRecord, StepRecord } from '../jobs/job-record';
import type { StepLedger } from '../jobs/step-ledger';
import type { Logger } from '../logger';
import { Demuxer, type Sink } from './demux';
import { checkSignal } from './signals';
import { PLACEMENT_WAIT_ENV, PLACEMENT_WAIT_MS, type SlurmStepCgroups } from './slurm-step-cgroup';
import { stepEnv } from './step-env';
import { initTtySizeEnv, Resizer, type TerminalSize, terminalSize } from './terminal-size';

export interface StepRequest {
  stepId: string;
  taskId: number;
  argv: string[];
  cwd: string;
  env: string[];
  tty: boolean;
  /** with tty: the client's window size at start, when it knows one */
  size?: TerminalSize;
  /** the client's step in Slurm's freezer cgroup tree (batch, extern, N), as it read it; else stepId is used */
  slurmStep?: string;
  /** the client's task in that step (task_N of its memory cgroup): N, as it read it */
  slurmTask?: string;
}

export interface StepOutcome {
  state: 'EXITED' | 'KILLED';
  exitCode: number;
  signal: string;
}

export type Signaller = (pid: number, signal: NodeJS.Signals) => void;

const defaultSignaller: Signaller = (pid, signal) => process.kill(pid, signal);

export class RunningStep {
  readonly done: Promise<StepOutcome>;
  private pid = 0;
  private queued: NodeJS.Signals[] = [];
  private lastSignal = '';
  private killTimer: NodeJS.Timeout | undefined;
  private ended = false;
  private readonly resizer: Resizer | undefined;

  constructor(
    readonly execId: string,
    private readonly handle: ExecHandle,
    private readonly stream: Duplex,
    io: { stdout: Sink; stderr: Sink },
    private readonly tty: boolean,
    private readonly signaller: Signaller,
    private readonly log: Logger,
    /** moves the step's first process (berth-init, waiting) into its Slurm step's cgroup and lets it go on */
    private readonly place?: (pid: number) => Promise<unknown>,
  ) {
    this.resizer = tty
      ? new Resizer((size) => handle.resize(size.rows, size.cols), (err, size) => {
        // a resize that arrives as the process exits finds it gone: nothing to tell anyone
        if (!this.ended) this.log.warn('could not resize the step\'s terminal', { rows: size.rows, cols: size.cols, error: engineMessage(err) });
      })
      : undefined;
    const demux = new Demuxer(io.stdout, io.stderr);
    stream.on('data', (chunk: Buffer) => (tty ? io.stdout(chunk) : demux.push(chunk)));
    this.done = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    }).then(() => {
      this.ended = true;
      return this.collectExit();
    });
    void this.learnPid();
  }

  write(data: Buffer): void {
    if (!this.stream.writableEnded) this.stream.write(data);
  }

  closeStdin(): void {
    if (!this.stream.writableEnded) this.stream.end();
  }

  /** The client's window changed size. A step without a terminal has no window: ignored. */
  resize(rows: number, cols: number): void {
    const size = terminalSize(rows, cols);
    if (!size) throw new Error(`window size ${rows}x${cols} is not one a terminal can have (rows and columns from 1 to 65535)`);
    if (!this.tty || this.ended) return;
    this.resizer?.request(size);
  }

  /** Resolves once the resizes asked so far have reached the engine (or failed). */
  resized(): Promise<void> {
    return this.resizer?.idle() ?? Promise.resolve();
  }

  signal(name: string): void {
    const sig = checkSignal(name);
    this.lastSignal = sig;
    if (this.pid > 0) this.sendToGroup(sig);
    else this.queued.push(sig);
  }

  /** The client went away: SIGTERM to the step's process group, SIGKILL after graceMs. */
  abort(graceMs: number): void {
    this.signal('SIGTERM');
    this.killTimer ??= setTimeout(() => this.signal('SIGKILL'), graceMs);
    this.killTimer.unref();
  }

  private sendToGroup(sig: NodeJS.Signals): void {
    try {
      this.signaller(-this.pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') this.log.warn('could not signal step', { pid: this.pid, signal: sig, error: String(err) });
    }
  }

  private async learnPid(): Promise<void> {
    for (let i = 0; i < 200 && this.pid === 0; i++) {
      try {
        const st = await this.handle.inspect();
        if (st.pid > 0) this.pid = st.pid;
        else if (!st.running && st.exitCode !== null) return;
      } catch {
        return;
      }
      if (this.pid === 0) await new Promise((r) => setTimeout(r, 5));
    }
    // before any queued signal: a SIGTERM the client sent meanwhile ends berth-init as it waits
    if (this.pid > 0 && this.place) await this.place(this.pid).catch(() => undefined);
    for (const sig of this.queued.splice(0)) this.sendToGroup(sig);
  }

  private async collectExit(): Promise<StepOutcome> {
    if (this.killTimer) clearTimeout(this.killTimer);
    // the hijacked connection is half-open after the process's output ends: close it, or
    // every step would leave a socket to dockerd behind
    this.stream.destroy();
    for (let i = 0; i < 100; i++) {
      const st = await this.handle.inspect().catch(() => undefined);
      if (!st) break;
      if (!st.running && st.exitCode !== null) {
        const code = st.exitCode;
        const byOurSignal = this.lastSignal !== '' && code > 128 && (constants.signals as Record<string, number>)[this.lastSignal] === code - 128;
        return byOurSignal ? { state: 'KILLED', exitCode: code, signal: this.lastSignal } : { state: 'EXITED', exitCode: code, signal: '' };
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return { state: 'KILLED', exitCode: 137, signal: this.lastSignal || 'unknown' };
  }
}

function within(dir: string, root: string): boolean {
  return root !== '' && (dir === root || dir.startsWith(root.endsWith('/') ? root : root + '/'));
}

export class StepRunner {
  constructor(
    private readonly engine: ExecEngine & Pick<ContainerEngine, 'pathExists'>,
    /** records each step on its job's record */
    private readonly ledger: Pick<StepLedger, 'start' | 'end'>,
    private readonly log: Logger,
    /** site mount targets: directories known to exist in every job container */
    private readonly mountTargets: readonly string[] = [],
    private readonly signaller: Signaller = defaultSignaller,
    /** environment berth adds to every step of a job (DOCKER_HOST & co. when users may use Docker) */
    private readonly jobEnv: (jobId: string) => string[] = () => [],
    /** the Slurm cgroups a step's processes join (the step's freezer, the task's memory and cpuacct); none: steps stay where docker puts them */
    private readonly slurmSteps?: SlurmStepCgroups,
  ) {}

  /** The step's directory must exist in the container: mounted, or present in the image. */
  private async checkCwd(job: JobRecord, cwd: string): Promise<void> {
    if (within(cwd, job.workDir) || [...this.mountTargets, ...(job.mountTargets ?? [])].some((t) => within(cwd, t))) return;
    if (await this.engine.pathExists(job.containerId, cwd).catch(() => true)) return;
    throw new BerthError('WORKDIR_MISSING', `the current directory ${cwd} does not exist in the container of job ${job.jobId}: cd into the job's working directory (${job.workDir || '/'}) or a site mount first`);
  }

  async start(job: JobRecord, req: StepRequest, user: { name: string; home: string }, io: { stdout: Sink; stderr: Sink }): Promise<{ step: RunningStep; record: StepRecord | undefined }> {
    if (job.state !== 'RUNNING' || !job.containerId) {
      throw new BerthError('JOB_NOT_RUNNING', `job ${job.jobId} has no running container on ${job.node} (state ${job.state}${job.error ? `: ${job.error}` : ''})`);
    }
    if (req.argv.length === 0 || req.argv[0] === '') throw new BerthError('INVALID_REQUEST', 'no command given: use berth exec -- CMD [ARGS...]');
    // --container-workdir wins over the client's directory, as with pyxis
    const cwd = job.containerWorkdir || req.cwd || job.workDir || '/';
    if (!cwd.startsWith('/')) throw new BerthError('INVALID_REQUEST', `working directory '${cwd}' is not an absolute path`);
    await this.checkCwd(job, cwd);
    const size = req.tty && req.size ? terminalSize(req.size.rows, req.size.cols) : undefined;
    const log = this.log.child({ job: job.jobId, step: req.stepId, task: req.taskId });
    // berth-init waits to be placed only when there is a Slurm cgroup to place it in
    const placement = this.slurmSteps?.placement(job, req.slurmStep || req.stepId, req.slurmTask ?? '', log);
    let handle: ExecHandle;
    let stream: Duplex;
    try {
      handle = await this.engine.createExec(job.containerId, {
        cmd: [INIT_PATH, 'exec', '--', ...req.argv],
        user: `${job.uid}:${job.gid}`,
        workingDir: cwd,
        env: [...stepEnv(req.env, user, job.envNames), ...this.jobEnv(job.jobId), ...(size ? [initTtySizeEnv(size)] : []),
          ...(placement ? [`${PLACEMENT_WAIT_ENV}=${PLACEMENT_WAIT_MS}`] : [])],
        tty: req.tty,
        ...(size ? { consoleSize: size } : {}),
      });
      stream = await handle.start();
    } catch (err) {
      throw new BerthError('ENGINE_FAILED', `job ${job.jobId}: could not start '${req.argv[0]}' in the container: ${engineMessage(err)}`, { cause: err });
    }
    // once in the Slurm task's memory and cpuacct cgroups, the step's usage is charged there,
    // not to the container: berth's record of it reads them too (jobs/step-ledger.ts)
    const joined = new Set<string>();
    const memory = placement?.task.memory;
    const cpuacct = placement?.task.cpuacct;
    const inTask = memory && cpuacct ? { dirs: { memory, cpuacct }, joined: () => joined.has(memory) && joined.has(cpuacct) } : undefined;
    const record = this.ledger.start(job.jobId, { stepId: req.stepId, taskId: req.taskId, argv: req.argv, startTime: new Date().toISOString() }, inTask);
    const slurmSteps = this.slurmSteps;
    const place = slurmSteps && placement ? (pid: number) => slurmSteps.place(pid, placement.dirs, log, (d) => joined.add(d)) : undefined;
    const step = new RunningStep(handle.id, handle, stream, io, req.tty, this.signaller, log, place);
    // an older berth-init ignores BERTH_TTY_SIZE: the engine's resize sets the size then, a moment late
    if (size) step.resize(size.rows, size.cols);
    log.info('step started', { exec: handle.id, argv0: req.argv[0] });
    void step.done.then((o) => {
      if (record) void this.ledger.end(job.jobId, record, o);
      log.info('step ended', { exec: handle.id, exitCode: o.exitCode, signal: o.signal, state: o.state });
    });
    return { step, record };
  }
}
