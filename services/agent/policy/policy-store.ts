// The site's policy file, loaded at start and reloaded on change (watch) or on SIGHUP (the
// caller wires the signal to reload()). A bad file at start stops berthd; a bad file later is
// logged and the policies loaded before stay in force: a typo while editing must neither open
// the node nor lock every user out.
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger';
import { parsePolicyFile } from './parse-policy';
import { PolicyError } from './policy-error';
import type { PolicySet } from './policy-types';

export interface PolicyStoreOptions {
  /** quiet time after the last change before reloading (editors write in several steps) */
  debounceMs?: number;
}

export class PolicyStore {
  private set: PolicySet | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly file: string, private readonly log: Logger, private readonly opts: PolicyStoreOptions = {}) {}

  /** Loads the file; throws PolicyError (every problem, one per line) when it cannot be used. */
  load(): void {
    this.set = this.read();
    this.log.info('policies loaded', { file: this.file, policies: this.set.policies.map((p) => p.name) });
  }

  /** The policies in force; the same object until a reload succeeds, so callers may cache what they build from it. */
  current(): PolicySet {
    if (!this.set) throw new Error(`the policies of ${this.file} were asked for before load()`);
    return this.set;
  }

  /** Reads the file again; true when the new policies are in force, false (logged) when the old ones stay. */
  reload(): boolean {
    try {
      const next = this.read();
      this.set = next;
      this.log.info('policies reloaded', { file: this.file, policies: next.policies.map((p) => p.name) });
      return true;
    } catch (err) {
      this.log.error('policy file not reloaded: the policies loaded before stay in force until it is fixed', {
        file: this.file, error: err instanceof Error ? err.message : String(err),
      });
      return false;
    }
  }

  /** Reloads after the file changes. Watches the directory: editors and config tools replace files by renaming. */
  watch(): void {
    if (this.watcher) return;
    const base = path.basename(this.file);
    this.watcher = watch(path.dirname(this.file), { persistent: false }, (_event, name) => {
      if (name !== null && name.toString() !== base) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload(), this.opts.debounceMs ?? 250);
      this.timer.unref();
    });
    this.watcher.on('error', (err) => this.log.warn('cannot watch the policy file any more; SIGHUP still reloads it', { file: this.file, error: err.message }));
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private read(): PolicySet {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new PolicyError([`${this.file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): check the path in the configuration`]);
    }
    return parsePolicyFile(text, this.file);
  }
}
