// The reconcile at start, asked again while Slurm does not answer: backs off, stops when
// Slurm answers or berthd stops.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retryReconcile, type ReconcileResult } from '../../services/agent/housekeeping/reconcile-retry';

function recorder() {
  const lines: { message: string; meta?: Record<string, unknown> }[] = [];
  const push = (message: string, meta?: Record<string, unknown>) => { lines.push({ message, meta }); };
  return { lines, log: { info: push, warn: push } };
}

/** the retry's timers are unref'd (they must not keep berthd alive): hold the loop meanwhile */
async function held<T>(p: Promise<T>): Promise<T> {
  const hold = setInterval(() => undefined, 1000);
  try { return await p; } finally { clearInterval(hold); }
}

describe('reconcile retry', () => {
  it('asks again, backing off, until Slurm answers, and logs each attempt', async () => {
    const at: number[] = [];
    const began = Date.now();
    let calls = 0;
    const r = recorder();
    const { done } = retryReconcile(async (): Promise<ReconcileResult> => {
      at.push(Date.now() - began);
      calls++;
      if (calls === 1) throw new Error('squeue: Unable to contact slurm controller');
      if (calls === 2) return { checked: 1, removed: [], settled: [], skipped: 'slurm unavailable' };
      return { checked: 2, removed: ['7'], settled: [] };
    }, r.log, () => false, { firstMs: 20, maxMs: 60 });
    const result = await held(done);
    assert.deepEqual(result?.removed, ['7']);
    assert.equal(calls, 3);
    // 20 ms, then 40 ms, then 60 ms (capped): each gap at least the delay
    assert.ok(at[0]! >= 19 && at[1]! - at[0]! >= 39 && at[2]! - at[1]! >= 59, JSON.stringify(at));
    assert.deepEqual(r.lines.map((l) => l.message), ['still cannot reconcile with Slurm', 'still cannot reconcile with Slurm', 'reconciled with Slurm']);
    assert.match(String(r.lines[0]!.meta?.error), /Unable to contact/);
    assert.equal(r.lines[1]!.meta?.error, 'slurm unavailable');
  });

  it('stops asking once berthd is stopping', async () => {
    let calls = 0;
    let stopping = false;
    const { done } = retryReconcile(async () => {
      calls++;
      stopping = true;
      throw new Error('down');
    }, recorder().log, () => stopping, { firstMs: 5, maxMs: 5 });
    assert.equal(await held(done), undefined);
    assert.equal(calls, 1);
  });
});
