// What `berth pull` shows while nodes pull. On a terminal: a frame redrawn in place, a bar per
// node and, under each node still pulling, a line per layer (waiting, downloading NN %,
// downloaded, extracting NN %, done); when that would not fit the terminal's height, one line
// per node with the layers counted by state. Elsewhere (a log, a pipe): lines only, a node's
// progress at most once every `everyMs` (none for a pull quicker than that), and its outcome.
import type { LayerProgress__Output } from '../shared/gen/berth/v1/LayerProgress';
import type { PullProgress__Output } from '../shared/gen/berth/v1/PullProgress';

type State = 'waiting' | 'downloading' | 'downloaded' | 'extracting' | 'done';

function stateOf(l: LayerProgress__Output): State {
  const s = l.state.replace(/^LAYER_STATE_/, '').toLowerCase();
  return s === 'downloading' || s === 'downloaded' || s === 'extracting' || s === 'done' ? s : 'waiting';
}

function bar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.round((width * Math.min(done, total)) / total) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
const pct = (cur: number, total: number): string => `${total > 0 ? Math.floor((100 * Math.min(cur, total)) / total) : 0} %`;

/** one layer's state in words: `downloading 40 % (12.0 of 30.0 MB)` */
export function layerText(l: LayerProgress__Output): string {
  const s = stateOf(l);
  if (s === 'downloading') return `downloading ${pct(l.currentBytes, l.totalBytes)} (${mb(l.currentBytes)} of ${mb(l.totalBytes)} MB)`;
  if (s === 'extracting') return `extracting ${pct(l.currentBytes, l.totalBytes)}`;
  if (s === 'downloaded') return 'downloaded, waiting to extract';
  return s;
}

/** the layers counted by state, for the one-line form: `3 done, 1 extracting 53 %, 2 downloading 40 % 12 %, 2 waiting` */
export function layerSummary(layers: readonly LayerProgress__Output[]): string {
  const order: State[] = ['done', 'extracting', 'downloaded', 'downloading', 'waiting'];
  return order.flatMap((s) => {
    const of = layers.filter((l) => stateOf(l) === s);
    if (!of.length) return [];
    const pcts = s === 'downloading' || s === 'extracting' ? ` ${of.map((l) => pct(l.currentBytes, l.totalBytes)).join(' ')}` : '';
    return [`${of.length} ${s}${pcts}`];
  }).join(', ');
}

interface NodeState {
  progress?: PullProgress__Output;
  final?: string;
  lastLineAt?: number;
}

export class PullView {
  private readonly nodes = new Map<string, NodeState>();
  private readonly width: number;

  constructor(nodes: readonly string[], private readonly opts: { everyMs?: number; now?: () => number } = {}) {
    for (const n of nodes) this.nodes.set(n, {});
    this.width = Math.max(0, ...nodes.map((n) => n.length));
  }

  /** Takes a node's progress; returns the line to write where there is no terminal (one per node every everyMs of its pull). */
  progress(node: string, p: PullProgress__Output): string | undefined {
    const s = this.nodes.get(node)!;
    s.progress = p;
    const now = (this.opts.now ?? Date.now)();
    // a pull quicker than the interval writes only its outcome
    s.lastLineAt ??= now;
    if (now - s.lastLineAt < (this.opts.everyMs ?? 30_000) || p.totalBytes === 0) return undefined;
    s.lastLineAt = now;
    return `${node.padEnd(this.width)}  pulling: ${pct(p.currentBytes, p.totalBytes)} (${mb(p.currentBytes)} of ${mb(p.totalBytes)} MB, ${p.layersDone} of ${p.layersTotal} layers done)`;
  }

  /** A node's outcome; returns its line. */
  finish(node: string, text: string): string {
    this.nodes.get(node)!.final = text;
    return `${node.padEnd(this.width)}  ${text}`;
  }

  /** The terminal's frame: per-layer lines when they fit in `rows`, else a line per node. */
  frame(rows = Infinity): string[] {
    const full = this.lines(true);
    return full.length <= rows ? full : this.lines(false);
  }

  private lines(perLayer: boolean): string[] {
    const out: string[] = [];
    for (const [node, s] of this.nodes) {
      const head = node.padEnd(this.width);
      if (s.final !== undefined) { out.push(`${head}  ${s.final}`); continue; }
      const p = s.progress;
      if (!p) { out.push(`${head}  waiting`); continue; }
      const sum = `${bar(p.currentBytes, p.totalBytes)} ${p.layersDone}/${p.layersTotal} layers ${mb(p.currentBytes)}/${mb(p.totalBytes)} MB`;
      if (!perLayer) { out.push(`${head}  ${sum}${p.layers.length ? `  ${layerSummary(p.layers)}` : ''}`); continue; }
      out.push(`${head}  ${sum}`);
      for (const l of p.layers) out.push(`${' '.repeat(this.width)}    ${l.id}  ${layerText(l)}`);
    }
    return out;
  }
}
