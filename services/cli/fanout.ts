// Asking many nodes at once: one call per node, at most `concurrency` in flight, each given
// up after `timeoutMs` (its AbortSignal fires so the call can cancel its RPC). A node that
// fails, refuses or hangs becomes an error entry; it never hides the answers of the others.
// The outcomes come back in the order of the nodes asked.

export interface FanoutError {
  /** TIMEOUT, UNREACHABLE, or the gRPC status name (PERMISSION_DENIED, ...) */
  code: string;
  message: string;
}

export type NodeOutcome<T> =
  | { node: string; ok: true; millis: number; value: T }
  | { node: string; ok: false; millis: number; error: FanoutError };

export interface FanoutOptions<T> {
  /** calls in flight at once (default 64) */
  concurrency?: number;
  /** per node */
  timeoutMs: number;
  /** an error thrown by a call, said as a FanoutError */
  describe: (err: unknown, node: string) => FanoutError;
  /** told of each node as it settles (progress output) */
  onSettled?: (outcome: NodeOutcome<T>) => void;
  now?: () => number;
}

export const DEFAULT_CONCURRENCY = 64;

/** Exit status of a fan-out: 0 every node answered, 3 some did, 1 none did. */
export const EXIT = { ALL: 0, NONE: 1, USAGE: 2, PARTIAL: 3 } as const;

export function fanoutExitStatus(outcomes: NodeOutcome<unknown>[]): number {
  const answered = outcomes.filter((o) => o.ok).length;
  if (answered === outcomes.length) return EXIT.ALL;
  return answered === 0 ? EXIT.NONE : EXIT.PARTIAL;
}

export async function fanOut<T>(nodes: string[], call: (node: string, signal: AbortSignal) => Promise<T>, opts: FanoutOptions<T>): Promise<NodeOutcome<T>[]> {
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  const now = opts.now ?? (() => performance.now());
  const outcomes = new Array<NodeOutcome<T>>(nodes.length);
  let next = 0;

  const one = async (node: string): Promise<NodeOutcome<T>> => {
    const began = now();
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
    });
    try {
      // a call that throws synchronously is that node's failure, not the fan-out's
      const answer = Promise.resolve().then(() => call(node, abort.signal));
      const first = await Promise.race([answer.then((value) => ({ value })), timedOut]);
      if (first === 'timeout') {
        abort.abort();
        answer.catch(() => undefined); // settles later (cancelled); nobody waits for it
        return { node, ok: false, millis: Math.round(now() - began), error: { code: 'TIMEOUT', message: `no answer from ${node} within ${formatSeconds(opts.timeoutMs)} (--timeout)` } };
      }
      return { node, ok: true, millis: Math.round(now() - began), value: first.value };
    } catch (err) {
      return { node, ok: false, millis: Math.round(now() - began), error: opts.describe(err, node) };
    } finally {
      clearTimeout(timer);
    }
  };

  const worker = async (): Promise<void> => {
    while (next < nodes.length) {
      const i = next++;
      const outcome = await one(nodes[i]!);
      outcomes[i] = outcome;
      opts.onSettled?.(outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, nodes.length) }, worker));
  return outcomes;
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
