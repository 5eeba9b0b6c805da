// After the last job on the node ends and none comes for a while, berthd runs one full
// collection; never while a job is held, never as a periodic timer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import { fullCollection, IdleMemory } from '../../services/agent/idle-memory';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(jobs: { n: number }) {
  const collected: number[] = [];
  const lines: string[] = [];
  const idle = new IdleMemory({
    busy: () => jobs.n > 0, collect: () => collected.push(Date.now()), quietMs: 30, rss: () => 96 * 1048576,
    log: { info: (m: string, meta?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(meta)}`) } as never,
  });
  return { idle, collected, lines };
}

describe('memory given back after a busy spell', () => {
  it('collects once when the last job has ended and the node stayed quiet, and says so', async () => {
    const jobs = { n: 0 };
    const { idle, collected, lines } = setup(jobs);
    idle.jobEnded();
    idle.jobEnded(); // a second end within the quiet time: still one collection
    assert.equal(collected.length, 0, 'not at once');
    await sleep(80);
    assert.equal(collected.length, 1);
    assert.match(lines[0] ?? '', /^no jobs on the node: collected .*"rssMiB":96/);
    await sleep(80);
    assert.equal(collected.length, 1, 'one timer per spell, not a periodic one');
  });

  it('does not collect while a job is held, nor when one came during the quiet time', async () => {
    const jobs = { n: 1 };
    const { idle, collected } = setup(jobs);
    idle.jobEnded(); // another job still runs
    await sleep(60);
    assert.equal(collected.length, 0);
    jobs.n = 0;
    idle.jobEnded();
    jobs.n = 1; // a new job started before the node was quiet for long
    await sleep(60);
    assert.equal(collected.length, 0);
  });

  it('stop() cancels a collection not yet run', async () => {
    const { idle, collected } = setup({ n: 0 });
    idle.jobEnded();
    idle.stop();
    await sleep(60);
    assert.equal(collected.length, 0);
  });

  it("V8's full collection gives back the heap of garbage", () => {
    const gc = fullCollection();
    assert.ok(gc, 'available without --expose-gc on the command line');
    let junk: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}`.repeat(4) }));
    const grown = v8.getHeapStatistics().used_heap_size;
    junk = undefined;
    void junk;
    gc();
    assert.ok(v8.getHeapStatistics().used_heap_size < grown - 10 * 1048576, 'at least 10 MiB of the garbage collected');
  });
});
