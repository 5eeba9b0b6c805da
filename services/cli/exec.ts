// `berth exec [--] CMD ARGS...`: run by the job's user inside an allocation (usually via
// srun), runs CMD in the job's container on this node and exits with its status. Signals
// that reach this process are forwarded to the step; if this process dies, berthd kills it.
// With a terminal (terminal.ts) the step gets one of the same size, the client's terminal is
// raw while attached and the window size follows SIGWINCH.
import type * as grpc from '@grpc/grpc-js';
import type { ExecStepResponse__Output } from '../shared/gen/berth/v1/ExecStepResponse';
import { agentTarget, callMetadata, connect, describeGrpcError } from './agent-client';
import { type Env, nodeName, ownSlurmStep, ownSlurmTask } from './slurm-env';
import { type JobId, parseJobId } from '../shared/ids';
import { type ExitHooks, RawTerminal, type TtyInput, type TtyOutput, wantTty, windowSize } from './terminal';

export { parseExecArgs } from './terminal';

/** Exit status for berth's own failures (as docker and podman use 125). */
export const EXIT_BERTH_ERROR = 125;

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGCONT', 'SIGALRM'];

export interface ExecIo {
  stdin: NodeJS.ReadableStream & TtyInput;
  stdout: NodeJS.WritableStream & TtyOutput;
  stderr: NodeJS.WritableStream;
}

export interface ExecOptions {
  /** true: a terminal for the step, false: none, undefined: one when stdin and stdout are terminals */
  tty?: boolean;
  /** where the raw terminal's restore-on-exit hook goes (process by default) */
  exitHooks?: ExitHooks;
}

export async function runExec(command: string[], env: Env, io: ExecIo, opts: ExecOptions = {}): Promise<number> {
  const raw = new RawTerminal(io.stdin, opts.exitHooks);
  const fail = (msg: string): number => {
    raw.restore(); // before the message: in raw mode a newline does not return the cursor
    io.stderr.write(`berth exec: ${msg}\n`);
    return EXIT_BERTH_ERROR;
  };
  if (!env.SLURM_JOB_ID) return fail('not inside a Slurm allocation (SLURM_JOB_ID is not set); run it as `srun berth exec -- CMD` in a job submitted with --container-image');
  let jobId: JobId;
  try {
    jobId = parseJobId(env.SLURM_JOB_ID, 'SLURM_JOB_ID');
  } catch (err) {
    return fail((err as Error).message);
  }
  if (command.length === 0) return fail('no command given; usage: berth exec [--] CMD [ARGS...]');
  const node = nodeName(env, '');
  if (!node) return fail('SLURMD_NODENAME is not set, so the node is unknown; run berth exec through srun');
  const target = agentTarget(node, env);
  let md: grpc.Metadata;
  try {
    md = await callMetadata(target, 'ExecStep', jobId);
  } catch (err) {
    return fail((err as Error).message);
  }
  const client = connect(target);
  const call = client.ExecStep(md);
  const tty = wantTty(opts.tty, io.stdin, io.stdout);
  const size = tty ? windowSize(io.stdout) : undefined;
  const childEnv = Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const slurmStep = ownSlurmStep(jobId);
  call.write({
    start: {
      jobId,
      stepId: env.SLURM_STEP_ID ?? '',
      taskId: Number(env.SLURM_PROCID ?? 0) || 0,
      argv: command,
      cwd: process.cwd(),
      env: childEnv,
      tty,
      rows: size?.rows ?? 0,
      cols: size?.cols ?? 0,
      slurmStep,
      slurmTask: ownSlurmTask(jobId, slurmStep),
    },
  });
  // raw from now on, so that keys typed while the step starts are not echoed or acted on here
  if (tty) raw.enter();

  const onSignal = (sig: NodeJS.Signals): void => {
    call.write({ signal: sig });
  };
  for (const s of FORWARDED_SIGNALS) process.on(s, onSignal);
  const onStdin = (chunk: Buffer): void => {
    call.write({ stdin: chunk });
  };
  const onStdinEnd = (): void => {
    call.write({ stdinClose: true });
  };
  // Node's tty streams emit 'resize' on SIGWINCH (srun --pty passes window changes on that way)
  const onResize = (): void => {
    const now = windowSize(io.stdout);
    if (now) call.write({ resize: now });
  };
  if (tty) io.stdout.on('resize', onResize);

  return await new Promise<number>((resolve) => {
    let exitCode: number | undefined;
    let started = false;
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      for (const s of FORWARDED_SIGNALS) process.off(s, onSignal);
      io.stdout.off('resize', onResize);
      raw.restore();
      io.stdin.off('data', onStdin);
      io.stdin.off('end', onStdinEnd);
      io.stdin.pause();
      client.close();
      resolve(code);
    };
    call.on('data', (m: ExecStepResponse__Output) => {
      if (m.msg === 'stdout' && m.stdout) io.stdout.write(m.stdout);
      else if (m.msg === 'stderr' && m.stderr) io.stderr.write(m.stderr);
      else if (m.msg === 'started' && !started) {
        started = true;
        // what the job's container runs without: said once, by task 0
        if ((process.env.SLURM_PROCID ?? '0') === '0') for (const w of m.started?.warnings ?? []) io.stderr.write(`${w}\n`);
        io.stdin.on('data', onStdin);
        io.stdin.on('end', onStdinEnd);
      } else if (m.msg === 'exit' && m.exit) {
        exitCode = m.exit.exitCode;
        call.end();
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (exitCode !== undefined) return finish(exitCode);
      finish(fail(describeGrpcError(err, target)));
    });
    call.on('end', () => {
      if (exitCode !== undefined) finish(exitCode);
    });
    call.on('status', (st: grpc.StatusObject) => {
      if (st.code === 0 && exitCode === undefined) finish(fail('berthd ended the step without an exit status'));
    });
  });
}
