// `berth pull IMAGE --nodes n[1-3]`: pre-stages an image on nodes in parallel through their
// agents, with a progress bar per node on a terminal (a line per node otherwise). A node that
// fails or cannot be reached is reported without hiding the others; the exit status says
// whether every node has the image.
import type * as grpc from '@grpc/grpc-js';
import type { PullImageProgress__Output } from '../shared/gen/berth/v1/PullImageProgress';
import { expandHostlist } from '../shared/hostlist';
import { agentTarget, callMetadata, connect, describeGrpcError } from './agent-client';

interface NodeLine {
  node: string;
  text: string;
  ok?: boolean;
}

function bar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.round((width * Math.min(done, total)) / total) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function pullOne(node: string, image: string, update: (text: string) => void): Promise<boolean> {
  const target = agentTarget(node);
  const client = connect(target);
  return callMetadata(target, 'PullImage', '').then((md) => new Promise<boolean>((resolve) => {
    const call = client.PullImage({ image }, md, { deadline: Date.now() + 15 * 60_000 });
    let finished = false;
    call.on('data', (m: PullImageProgress__Output) => {
      if (m.msg === 'progress' && m.progress) {
        const p = m.progress;
        update(`${bar(p.currentBytes, p.totalBytes)} ${p.layersDone}/${p.layersTotal} layers ${mb(p.currentBytes)}/${mb(p.totalBytes)} MB ${p.status}`);
      } else if (m.msg === 'done' && m.done) {
        finished = true;
        update(`${m.done.pulled ? `pulled in ${(m.done.millis / 1000).toFixed(1)} s` : 'already present'}: ${m.done.imageDigest}`);
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      update(`error: ${describeGrpcError(err, target)}`);
      client.close();
      resolve(false);
    });
    call.on('end', () => {
      client.close();
      resolve(finished);
    });
  }), (err: unknown) => {
    update(`error: ${(err as Error).message}`);
    client.close();
    return false;
  });
}

export async function runPull(image: string, nodes: string, out: NodeJS.WritableStream & { isTTY?: boolean }): Promise<number> {
  const list = expandHostlist(nodes);
  if (list.length === 0) {
    out.write(`berth pull: no nodes in '${nodes}'\n`);
    return 2;
  }
  const width = Math.max(...list.map((n) => n.length));
  const lines: NodeLine[] = list.map((node) => ({ node, text: 'waiting' }));
  const tty = Boolean(out.isTTY);
  const render = (): void => {
    out.write(`\x1b[${lines.length}A`);
    for (const l of lines) out.write(`\x1b[2K${l.node.padEnd(width)}  ${l.text}\n`);
  };
  if (tty) for (const l of lines) out.write(`${l.node.padEnd(width)}  ${l.text}\n`);
  const results = await Promise.all(lines.map((l) => pullOne(l.node, image, (text) => {
    l.text = text;
    if (tty) render();
  }).then((ok) => {
    l.ok = ok;
    if (!tty) out.write(`${l.node.padEnd(width)}  ${l.text}\n`);
    return ok;
  })));
  const failed = results.filter((ok) => !ok).length;
  out.write(failed ? `berth pull: ${failed} of ${list.length} node(s) do not have ${image}\n` : `berth pull: ${image} is on all ${list.length} node(s)\n`);
  return failed ? 1 : 0;
}
