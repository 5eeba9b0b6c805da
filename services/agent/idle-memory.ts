// Memory given back after a busy spell. Under load berthd's heap grows (V8 keeps the pages of
// a spell's garbage until a full collection, and its memory reducer may wait long for one), so
// an agent that served many jobs idled at its high-water mark (97 MiB after a CI run against
// 74 MiB fresh). When the last job on the node has ended and none has come for QUIET_MS, one
// full collection runs; V8 then returns the freed pages to the kernel. One timer per spell,
// never a periodic one: an idle node stays quiet, and no job is running when it fires.
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './logger';

export const QUIET_MS = 10_000;

/** V8's full collection, without starting node with --expose-gc (undefined where V8 refuses) */
export function fullCollection(): (() => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

export interface IdleMemoryDeps {
  /** whether any job is held on the node */
  busy: () => boolean;
  /** the full collection (fullCollection's) */
  collect: () => void;
  log: Pick<Logger, 'info'>;
  quietMs?: number;
  rss?: () => number;
}

export class IdleMemory {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly d: IdleMemoryDeps) {}

  /** a job ended: once the node has none for a while, give back what the spell took */
  jobEnded(): void {
    if (this.d.busy()) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.settle(), this.d.quietMs ?? QUIET_MS);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private settle(): void {
    this.timer = undefined;
    if (this.d.busy()) return; // a job came meanwhile: its end arms this again
    const rss = this.d.rss ?? (() => process.memoryUsage.rss());
    const before = rss();
    const began = Date.now();
    this.d.collect();
    this.d.log.info('no jobs on the node: collected the heap of the last busy spell', {
      rssMiB: Math.round(before / 1048576), millis: Date.now() - began,
    });
  }
}
