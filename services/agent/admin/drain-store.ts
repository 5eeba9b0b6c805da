// An admin's drain of this node for container jobs (`berth drain`, `berth resume`): kept in
// stateDir/drain.json (written atomically) so that a restarted berthd stays drained. A
// drained agent refuses new container jobs at the prologue; running jobs are untouched.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../shared/errors';
import { writeFileAtomic } from '../../shared/atomic-write';

export interface DrainState {
  drained: boolean;
  reason: string;
  /** RFC 3339 */
  since: string;
  /** "root" or a remote identity */
  by: string;
}

const NOT_DRAINED: DrainState = Object.freeze({ drained: false, reason: '', since: '', by: '' });

export class DrainStore {
  private readonly file: string;
  private state: DrainState;

  constructor(stateDir: string, private readonly now: () => Date = () => new Date()) {
    this.file = path.join(stateDir, 'drain.json');
    this.state = this.read();
  }

  get(): DrainState {
    return this.state;
  }

  /** Drains (or re-drains with a new reason); returns whether the drained flag changed. */
  drain(reason: string, by: string): boolean {
    const text = reason.trim();
    if (!text) throw new BerthError('INVALID_REQUEST', 'a drain needs a reason, shown to users whose jobs are refused: berth drain --reason "..."');
    const changed = !this.state.drained;
    this.write({ drained: true, reason: text, since: changed ? this.now().toISOString() : this.state.since, by });
    return changed;
  }

  /** Resumes; returns whether the node was drained. */
  resume(): boolean {
    if (!this.state.drained) return false;
    rmSync(this.file, { force: true });
    this.state = NOT_DRAINED;
    return true;
  }

  /** Throws NODE_DRAINED for a new container job while drained. */
  assertAccepting(node: string, jobId: string): void {
    const s = this.state;
    if (!s.drained) return;
    throw new BerthError('NODE_DRAINED',
      `node ${node} is drained for container jobs since ${s.since} (reason: ${s.reason}); job ${jobId} was not started here. An admin ends the drain with: berth resume --nodes ${node}`);
  }

  private write(s: DrainState): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file, JSON.stringify(s) + '\n', { mode: 0o600 });
    this.state = Object.freeze({ ...s });
  }

  private read(): DrainState {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return NOT_DRAINED;
      throw new Error(`cannot read the drain state ${this.file}: ${(err as Error).message}`);
    }
    try {
      const raw = JSON.parse(text) as Partial<DrainState>;
      if (raw.drained !== true || typeof raw.reason !== 'string') throw new Error('expected {"drained": true, "reason": "..."}');
      return Object.freeze({ drained: true, reason: raw.reason, since: String(raw.since ?? ''), by: String(raw.by ?? '') });
    } catch (err) {
      // a damaged file must not silently undo an admin's drain
      throw new Error(`the drain state ${this.file} is damaged (${(err as Error).message}); fix it or delete it to resume the node`);
    }
  }
}
