// The window size of a tty step. The size at start reaches the process before it runs
// (berth-init sets it from BERTH_TTY_SIZE; a resize after docker's exec start would race with
// a command that reads it at once, such as `stty size`), later sizes go through the engine's
// exec resize, one call at a time, in order, the newest winning over ones not yet sent.

export interface TerminalSize {
  rows: number;
  cols: number;
}

/** struct winsize holds unsigned shorts */
const MAX = 0xffff;

/** The size, when both sides are whole numbers a terminal can have; undefined otherwise. */
export function terminalSize(rows: number, cols: number): TerminalSize | undefined {
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= MAX;
  return ok(rows) && ok(cols) ? { rows, cols } : undefined;
}

/** read (and removed from the environment) by `berth-init exec` before it runs the command */
export const INIT_TTY_SIZE_ENV = 'BERTH_TTY_SIZE';

export function initTtySizeEnv(size: TerminalSize): string {
  return `${INIT_TTY_SIZE_ENV}=${size.rows}x${size.cols}`;
}

/**
 * Applies window sizes in the order asked, never two calls at once. While one call is in
 * flight only the newest request is kept (a window being dragged sends a burst of SIGWINCH),
 * and a size equal to the last one applied is not sent again.
 */
export class Resizer {
  private pending: TerminalSize | undefined;
  private last: TerminalSize | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly apply: (size: TerminalSize) => Promise<void>,
    private readonly onError: (err: unknown, size: TerminalSize) => void,
  ) {}

  request(size: TerminalSize): void {
    this.pending = size;
    // drain from a microtask: it clears `running` when done, which must come after this line set it
    this.running ??= Promise.resolve().then(() => this.drain());
  }

  /** Resolves once every request so far has been applied or has failed. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const size = this.pending;
      this.pending = undefined;
      if (this.last && this.last.rows === size.rows && this.last.cols === size.cols) continue;
      try {
        await this.apply(size);
        this.last = size;
      } catch (err) {
        this.onError(err, size);
      }
    }
    this.running = undefined;
  }
}
