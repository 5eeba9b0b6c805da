// What a user whose job waits on an image pull is told, where they read about their job
// (AdminComment: `scontrol show job`, `squeue -O admincomment`, sacct): a line once the pull
// has taken a while, then at most one every few seconds, and how long it took once it ends.
// A pull of a cached image, or a quick one, tells nothing. Driven by the pull's own progress
// events: no timer, so an idle node is not woken.
import type { PullProgress } from '../docker/pull-stream';

export interface PullNoticeTimes {
  /** the first line once the pull has taken this long */
  afterMs: number;
  /** then at most one line this often */
  everyMs: number;
}

const DEFAULT_TIMES: PullNoticeTimes = { afterMs: 1000, everyMs: 5000 };
const MB = 1e6;

export interface PullNotice {
  progress(p: PullProgress): void;
  /** the pull ended; `ok`: it succeeded */
  done(ok: boolean): void;
}

export function pullNotice(
  tell: (text: string) => void,
  what: { image: string; node: string },
  times: PullNoticeTimes = DEFAULT_TIMES,
  now: () => number = Date.now,
): PullNotice {
  const began = now();
  let last = 0;
  let told = false;
  return {
    progress(p) {
      const t = now();
      if (t - began < times.afterMs || (told && t - last < times.everyMs)) return;
      last = t;
      told = true;
      const pct = p.totalBytes > 0 ? Math.min(100, Math.floor((p.currentBytes / p.totalBytes) * 100)) : 0;
      const size = p.totalBytes > 0 ? `${Math.round(p.currentBytes / MB)} of ${Math.round(p.totalBytes / MB)} MB` : 'size not known yet';
      tell(`berth: pulling ${what.image} on ${what.node}: ${pct} % (${size}, ${p.layersDone} of ${p.layersTotal} layers done)`);
    },
    done(ok) {
      if (!told || !ok) return; // a failed pull is said by the prologue's own error
      tell(`berth: pulled ${what.image} on ${what.node} in ${Math.round((now() - began) / 1000)} s`);
    },
  };
}
