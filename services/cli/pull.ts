// `berth pull IMAGE --nodes n[1-3]`: pre-stages an image on nodes in parallel through their
// agents (the fan-out of fleet-run.ts: bounded concurrency, a timeout per node), with a
// progress bar per node and a line per layer on a terminal (pull-view.ts; elsewhere a node's
// progress at most every 30 s and its outcome). A node that fails or
// cannot be reached is reported without hiding the others; the exit status says whether
// every node (0), some (3) or none (1) has the image.
import type * as grpc from '@grpc/grpc-js';
import type { PullImageDone__Output } from '../shared/gen/berth/v1/PullImageDone';
import type { PullImageProgress__Output } from '../shared/gen/berth/v1/PullImageProgress';
import { fanoutExitStatus } from './fanout';
import { askNodes, type ConnectionOptions, expandNodes, fleetJson } from './fleet-run';
import { PullView } from './pull-view';

export interface PullOptions {
  json?: boolean;
  timeoutSeconds?: number;
  concurrency?: number;
  conn: ConnectionOptions;
}

export async function runPull(image: string, nodes: string, out: NodeJS.WritableStream & { isTTY?: boolean; rows?: number }, opts: PullOptions): Promise<number> {
  const list = expandNodes(nodes);
  const view = new PullView(list);
  const tty = Boolean(out.isTTY) && !opts.json;
  // the terminal's frame, redrawn in place at most ten times a second
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    timer = undefined;
    const lines = view.frame(Math.max(1, (out.rows ?? 50) - 2));
    out.write(`${drawn ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}\x1b[J`);
    drawn = lines.length;
  };
  const redraw = (): void => {
    if (tty) timer ??= setTimeout(draw, 100);
  };
  if (tty) draw();
  const outcomes = await askNodes<PullImageDone__Output>({
    method: 'PullImage',
    defaultTimeoutMs: 15 * 60_000,
    call: (client, md, deadlineMs, signal, node) => new Promise((resolve, reject) => {
      const call = client.PullImage({ image }, md, { deadline: Date.now() + deadlineMs });
      signal.addEventListener('abort', () => call.cancel(), { once: true });
      let done: PullImageDone__Output | undefined;
      call.on('data', (m: PullImageProgress__Output) => {
        if (m.msg === 'progress' && m.progress) {
          const line = view.progress(node, m.progress);
          if (tty) redraw();
          else if (line && !opts.json) out.write(`${line}\n`);
        } else if (m.msg === 'done' && m.done) {
          done = m.done;
        }
      });
      call.on('error', (err: grpc.ServiceError) => reject(err));
      call.on('end', () => (done ? resolve(done) : reject(new Error(`berthd on ${node} ended the pull without saying it was done`))));
    }),
  }, list, opts, (o) => {
    const text = o.ok ? `${o.value.pulled ? `pulled in ${(o.value.millis / 1000).toFixed(1)} s` : 'already present'}: ${o.value.imageDigest}` : `error: ${o.error.message}`;
    const line = view.finish(o.node, text);
    if (tty) redraw();
    else if (!opts.json) out.write(`${line}\n`);
  });
  if (timer) clearTimeout(timer);
  if (tty) draw();
  if (opts.json) {
    out.write(fleetJson('pull', outcomes));
  } else {
    const failed = outcomes.filter((o) => !o.ok).length;
    out.write(failed ? `berth pull: ${failed} of ${list.length} node(s) do not have ${image}\n` : `berth pull: ${image} is on all ${list.length} node(s)\n`);
  }
  return fanoutExitStatus(outcomes);
}
