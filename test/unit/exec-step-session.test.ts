// ExecStep's session when its client hangs up: before the exit was sent the step is killed
// (and said so in the log); after it, there is nothing to kill and nothing to warn about
// (berth-exec closes its stream once it has read the exit, on every berth exec).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { openExecStep } from '../../services/agent/server/exec-step';
import type { AgentServiceDeps, DuplexSession, OwnJobContext } from '../../services/agent/server/method-types';
import type { ExecStart__Output } from '../../services/shared/gen/berth/v1/ExecStart';
import type { ExecStepRequest__Output } from '../../services/shared/gen/berth/v1/ExecStepRequest';
import type { ExecStepResponse } from '../../services/shared/gen/berth/v1/ExecStepResponse';

function harness() {
  const warnings: string[] = [];
  const aborted: number[] = [];
  const written: ExecStepResponse[] = [];
  let finish!: (o: { exitCode: number; signal: string }) => void;
  const done = new Promise<{ exitCode: number; signal: string }>((r) => (finish = r));
  const step = { execId: 'exec-1', done, abort: (ms: number) => aborted.push(ms), write() {}, closeStdin() {}, signal() {}, resize() {} };
  const call = { cancelled: false, write: (m: ExecStepResponse) => written.push(m), end() {} };
  const d = {
    stopGraceMs: 250,
    identities: { lookup: async () => ({ name: 'alice', uid: 2001, gid: 2001, home: '/home/alice', groups: [] }) },
    steps: { start: async () => ({ step }) },
    log: { warn: (m: string) => warnings.push(m), info() {}, error() {}, debug() {} },
  } as unknown as AgentServiceDeps;
  const session: DuplexSession<ExecStart__Output, OwnJobContext> = {
    admit: async () => ({ job: { uid: 2001, warnings: [] } }) as unknown as OwnJobContext,
    fail: (err) => assert.fail(`the session failed: ${String(err)}`),
  };
  const start = { jobId: '7', argv: ['true'] } as unknown as ExecStart__Output;
  const handlers = openExecStep(d, call as unknown as grpc.ServerDuplexStream<ExecStepRequest__Output, ExecStepResponse>, start, session);
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setImmediate(r));
    assert.ok(ok(), what);
  };
  return { handlers, call, written, warnings, aborted, finish, until };
}

describe('ExecStep: a client that goes away', () => {
  it('kills a running step and says so', async () => {
    const h = harness();
    await h.until('the step started', () => h.written.some((m) => m.started));
    h.call.cancelled = true;
    h.handlers.cancelled();
    assert.deepEqual(h.aborted, [250]);
    assert.deepEqual(h.warnings, ['client went away; killing its step']);
  });

  it('leaves alone a step whose exit it was sent, without a warning', async () => {
    const h = harness();
    await h.until('the step started', () => h.written.some((m) => m.started));
    h.finish({ exitCode: 0, signal: '' });
    await h.until('the exit was sent', () => h.written.some((m) => m.exit));
    h.call.cancelled = true;
    h.handlers.cancelled();
    assert.deepEqual(h.aborted, []);
    assert.deepEqual(h.warnings, []);
  });
});
