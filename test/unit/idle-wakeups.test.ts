// An idle berthd must not wake the node up every few milliseconds (issue 15: OS noise hurts
// MPI). The metrics registry is the part that did: prom-client's event-loop lag sampling ran a
// 10 ms timer. A process holding berthd's metrics is watched for 2 s: its main thread's
// voluntary context switches count its wake-ups.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

function switches(pid: number): number {
  const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

async function wakeupsOfIdle(script: string): Promise<number> {
  const root = path.join(import.meta.dirname, '..', '..');
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the idle process exited (${code})`)));
    });
    await new Promise((r) => setTimeout(r, 500)); // start-up settles
    const before = switches(child.pid!);
    await new Promise((r) => setTimeout(r, 2000));
    return switches(child.pid!) - before;
  } finally {
    child.kill('SIGKILL');
  }
}

describe('idle wake-ups', () => {
  it("berthd's metrics leave an idle process asleep (a 10 ms sampler would wake it ~200 times in 2 s)", async () => {
    const idle = await wakeupsOfIdle(
      "const { AgentMetrics } = await import('./services/agent/metrics/agent-metrics.ts'); globalThis.m = new AgentMetrics('n1'); console.log('ready'); setInterval(() => undefined, 3_600_000);",
    );
    assert.ok(idle < 40, `the idle process woke ${idle} times in 2 s`);
  });

  it('the measure sees a process that wakes every 10 ms (the test itself)', async () => {
    const busy = await wakeupsOfIdle("console.log('ready'); setInterval(() => undefined, 10);");
    assert.ok(busy > 100, `a 10 ms timer woke it only ${busy} times in 2 s`);
  });
});
