// ExecStep's session: `start` opens it (admitted by the method table's wiring: phase, caller,
// job id, the caller's own job), then stdin, stdin_close, signal and resize go to the running
// step, and the answer is `started`, the output, and one `exit`. Messages that arrive while the
// step starts are kept and applied once it runs; a client that goes away kills its step.
import type * as grpc from '@grpc/grpc-js';
import type { ExecStart__Output } from '../../shared/gen/berth/v1/ExecStart';
import type { ExecStepRequest__Output } from '../../shared/gen/berth/v1/ExecStepRequest';
import type { ExecStepResponse } from '../../shared/gen/berth/v1/ExecStepResponse';
import type { RunningStep } from '../steps/step-runner';
import type { AgentServiceDeps, DuplexHandlers, DuplexSession, OwnJobContext } from './method-types';
import { fromProtoExecStart } from './proto-mapping';

export function openExecStep(d: AgentServiceDeps, call: grpc.ServerDuplexStream<ExecStepRequest__Output, ExecStepResponse>,
  start: ExecStart__Output, session: DuplexSession<ExecStart__Output, OwnJobContext>): DuplexHandlers<ExecStepRequest__Output> {
  let step: RunningStep | undefined;
  let phase: 'starting' | 'running' | 'done' = 'starting';
  const pending: ExecStepRequest__Output[] = [];

  const fail = (err: unknown): void => {
    if (phase === 'done') return;
    phase = 'done';
    session.fail(err);
  };
  const apply = (m: ExecStepRequest__Output): void => {
    if (!step) return;
    try {
      if (m.msg === 'stdin' && m.stdin) step.write(m.stdin);
      else if (m.msg === 'stdinClose') step.closeStdin();
      else if (m.msg === 'signal' && m.signal) step.signal(m.signal);
      else if (m.msg === 'resize' && m.resize) step.resize(m.resize.rows, m.resize.cols);
    } catch (err) {
      call.write({ stderr: Buffer.from(`berth: ${(err as Error).message}\n`) });
    }
  };

  void (async () => {
    const { job } = await session.admit(start);
    const user = await d.identities.lookup(job.uid);
    const started = await d.steps.start(job, fromProtoExecStart(start), user, {
      stdout: (chunk) => call.write({ stdout: chunk }),
      stderr: (chunk) => call.write({ stderr: chunk }),
    });
    step = started.step;
    if (call.cancelled) step.abort(d.stopGraceMs);
    phase = 'running';
    call.write({ started: { execId: step.execId, warnings: job.warnings ?? [] } });
    for (const p of pending.splice(0)) apply(p);
    const outcome = await step.done;
    if (call.cancelled) return;
    phase = 'done';
    call.write({ exit: { exitCode: outcome.exitCode, signal: outcome.signal } });
    call.end();
  })().catch(fail);

  return {
    message(m) {
      if (phase === 'running') return apply(m);
      if (phase === 'starting') pending.push(m);
    },
    end() {
      if (phase === 'running') step?.closeStdin();
      else if (phase === 'starting') pending.push({ msg: 'stdinClose', stdinClose: true });
    },
    cancelled() {
      // a client that hangs up after its exit was sent has nothing left to kill (its pid may be another's by now)
      if (step && phase !== 'done') {
        d.log.warn('client went away; killing its step', { exec: step.execId });
        step.abort(d.stopGraceMs);
      }
    },
  };
}
