import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXIT, fanOut, fanoutExitStatus, type FanoutError, type NodeOutcome } from '../../services/cli/fanout';

const describeErr = (err: unknown): FanoutError => ({ code: 'UNREACHABLE', message: (err as Error).message });

describe('fan-out over nodes', () => {
  it('reports the nodes that answer, the one that hangs past the timeout and the one that refuses, in the order asked', async () => {
    let hungAborted = false;
    const call = (node: string, signal: AbortSignal): Promise<string> => {
      if (node === 'n2') {
        return new Promise((_, reject) => signal.addEventListener('abort', () => {
          hungAborted = true;
          reject(new Error('cancelled'));
        }));
      }
      if (node === 'n3') return Promise.reject(new Error('connect ECONNREFUSED'));
      return new Promise((resolve) => setTimeout(() => resolve(`hello from ${node}`), 5));
    };
    const began = Date.now();
    const out = await fanOut(['n1', 'n2', 'n3', 'n4'], call, { timeoutMs: 200, describe: describeErr });
    const took = Date.now() - began;
    assert.deepEqual(out.map((o) => o.node), ['n1', 'n2', 'n3', 'n4']);
    assert.deepEqual(out.map((o) => o.ok), [true, false, false, true]);
    assert.equal((out[0] as Extract<NodeOutcome<string>, { ok: true }>).value, 'hello from n1');
    const hung = out[1] as Extract<NodeOutcome<string>, { ok: false }>;
    assert.equal(hung.error.code, 'TIMEOUT');
    assert.match(hung.error.message, /no answer from n2 within 0\.2 s \(--timeout\)/);
    assert.ok(hung.millis >= 190, `timed out after ${hung.millis} ms`);
    assert.equal(hungAborted, true, 'the hung call was told to cancel');
    assert.deepEqual((out[2] as Extract<NodeOutcome<string>, { ok: false }>).error, { code: 'UNREACHABLE', message: 'connect ECONNREFUSED' });
    assert.ok(took < 1000, `the hung node did not hold the others: ${took} ms`);
    assert.equal(fanoutExitStatus(out), EXIT.PARTIAL);
  });

  it('keeps at most `concurrency` calls in flight and still asks every node', async () => {
    let inFlight = 0;
    let peak = 0;
    const nodes = Array.from({ length: 50 }, (_, i) => `n${i}`);
    const out = await fanOut(nodes, async (node) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      return node.toUpperCase();
    }, { timeoutMs: 5000, concurrency: 8, describe: describeErr });
    assert.equal(peak, 8);
    assert.deepEqual(out.map((o) => (o.ok ? o.value : '')), nodes.map((n) => n.toUpperCase()));
    assert.equal(fanoutExitStatus(out), EXIT.ALL);
  });

  it('turns a call that throws synchronously into that node\'s error, and exits 1 when no node answered', async () => {
    const seen: string[] = [];
    const out = await fanOut(['a', 'b'], (node) => {
      throw new Error(`bad target ${node}`);
    }, { timeoutMs: 1000, describe: describeErr, onSettled: (o) => seen.push(o.node) });
    assert.deepEqual(out.map((o) => (o.ok ? '' : o.error.message)), ['bad target a', 'bad target b']);
    assert.deepEqual(seen.sort(), ['a', 'b']);
    assert.equal(fanoutExitStatus(out), EXIT.NONE);
  });
});
