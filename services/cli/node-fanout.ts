// Runs one request per node, many at a time, and keeps every node's outcome: a node that
// fails or cannot be reached is reported without hiding the others. Used by berth
// accounting; self-contained so that other multi-node commands can share it.
export type NodeOutcome<T> = { node: string; ok: true; value: T } | { node: string; ok: false; error: unknown };

export async function fanOutNodes<T>(nodes: readonly string[], fn: (node: string) => Promise<T>, concurrency = 32): Promise<NodeOutcome<T>[]> {
  const results: NodeOutcome<T>[] = new Array(nodes.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < nodes.length) {
      const i = next++;
      const node = nodes[i]!;
      try {
        results[i] = { node, ok: true, value: await fn(node) };
      } catch (error) {
        results[i] = { node, ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, nodes.length)) }, worker));
  return results;
}
