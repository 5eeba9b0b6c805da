// `berth pull IMAGE --nodes n[1-3]`: pre-stages an image on nodes in parallel through their
// agents (the fan-out of fleet-run.ts: bounded concurrency, a timeout per node), with a
// progress bar per node on a terminal (a line per node otherwise). A node that fails or
// cannot be reached is reported without hiding the others; the exit status says whether
// every node (0), some (3) or none (1) has the image.
import type * as grpc from '@grpc/grpc-js';
import type { PullImageDone__Output } from '../shared/gen/berth/v1/PullImageDone';
import type { PullImageProgress__Output } from '../shared/gen/berth/v1/PullImageProgress';
import { fanoutExitStatus } from './fanout';
import { askNodes, type ConnectionOptions, expandNodes, fleetJson } from './fleet-run';

interface NodeLine {
  node: string;
  text: string;
}

function bar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.round((width * Math.min(done, total)) / total) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

export interface PullOptions {
  json?: boolean;
  timeoutSeconds?: number;
  concurrency?: number;
  conn: ConnectionOptions;
}

export async function runPull(image: string, nodes: string, out: NodeJS.WritableStream & { isTTY?: boolean }, opts: PullOptions): Promise<number> {
  const list = expandNodes(nodes);
  const width = Math.max(...list.map((n) => n.length));
  const lines = new Map<string, NodeLine>(list.map((node) => [node, { node, text: 'waiting' }]));
  const tty = Boolean(out.isTTY) && !opts.json;
  const render = (): void => {
    out.write(`\x1b[${lines.size}A`);
    for (const l of lines.values()) out.write(`\x1b[2K${l.node.padEnd(width)}  ${l.text}\n`);
  };
  const update = (node: string, text: string): void => {
    lines.get(node)!.text = text;
    if (tty) render();
  };
  if (tty) for (const l of lines.values()) out.write(`${l.node.padEnd(width)}  ${l.text}\n`);
  const outcomes = await askNodes<PullImageDone__Output>({
    method: 'PullImage',
    defaultTimeoutMs: 15 * 60_000,
    call: (client, md, deadlineMs, signal, node) => new Promise((resolve, reject) => {
      const call = client.PullImage({ image }, md, { deadline: Date.now() + deadlineMs });
      signal.addEventListener('abort', () => call.cancel(), { once: true });
      let done: PullImageDone__Output | undefined;
      call.on('data', (m: PullImageProgress__Output) => {
        if (m.msg === 'progress' && m.progress) {
          const p = m.progress;
          update(node, `${bar(p.currentBytes, p.totalBytes)} ${p.layersDone}/${p.layersTotal} layers ${mb(p.currentBytes)}/${mb(p.totalBytes)} MB ${p.status}`);
        } else if (m.msg === 'done' && m.done) {
          done = m.done;
        }
      });
      call.on('error', (err: grpc.ServiceError) => reject(err));
      call.on('end', () => (done ? resolve(done) : reject(new Error(`berthd on ${node} ended the pull without saying it was done`))));
    }),
  }, list, opts, (o) => {
    const text = o.ok ? `${o.value.pulled ? `pulled in ${(o.value.millis / 1000).toFixed(1)} s` : 'already present'}: ${o.value.imageDigest}` : `error: ${o.error.message}`;
    update(o.node, text);
    if (!tty && !opts.json) out.write(`${o.node.padEnd(width)}  ${text}\n`);
  });
  if (opts.json) {
    out.write(fleetJson('pull', outcomes));
  } else {
    const failed = outcomes.filter((o) => !o.ok).length;
    out.write(failed ? `berth pull: ${failed} of ${list.length} node(s) do not have ${image}\n` : `berth pull: ${image} is on all ${list.length} node(s)\n`);
  }
  return fanoutExitStatus(outcomes);
}
