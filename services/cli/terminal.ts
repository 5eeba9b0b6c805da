// The client's side of a tty step. While attached, the client's terminal is in raw mode: every
// key, Ctrl-C (0x03) and Ctrl-D (0x04) included, goes to the container's terminal, whose line
// discipline turns it into SIGINT for the foreground job or an EOF, as a local terminal would.
// Raw mode is undone on every way out: the step's end, an error, and process exit.
import { spawnSync } from 'node:child_process';

export interface TtyInput {
  fd?: number;
  isTTY?: boolean;
  isRaw?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export interface TtyOutput {
  isTTY?: boolean;
  rows?: number;
  columns?: number;
}

export interface WindowSize {
  rows: number;
  cols: number;
}

/** `--tty` forces a terminal, `--no-tty` refuses one, neither: one when stdin and stdout are terminals (as `docker exec -it`). */
export function wantTty(flag: boolean | undefined, stdin: TtyInput, stdout: TtyOutput): boolean {
  return flag ?? Boolean(stdin.isTTY && stdout.isTTY);
}

/** The window size of the client's terminal; undefined when stdout is not one or reports no size. */
export function windowSize(out: TtyOutput): WindowSize | undefined {
  if (!out.isTTY) return undefined;
  const rows = out.rows ?? 0;
  const cols = out.columns ?? 0;
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 0xffff;
  return ok(rows) && ok(cols) ? { rows, cols } : undefined;
}

/** what RawTerminal needs of `process`: a hook run on exit, whatever the reason */
export interface ExitHooks {
  on(event: 'exit', fn: () => void): unknown;
  off(event: 'exit', fn: () => void): unknown;
}

/**
 * Node's raw mode (libuv) keeps output post-processing on: every \n the container's terminal
 * sends as \r\n would reach the screen as \r\r\n, and a full-screen program that moves the
 * cursor down with a bare \n would see it go to column 0. `stty -opost` turns that off as
 * docker and ssh do; leaving raw mode (libuv restores the settings it found) turns it back on.
 */
export function outputPostProcessingOff(input: TtyInput): void {
  if (typeof input.fd !== 'number') return;
  // without stty the screen just gets doubled carriage returns: nothing worth failing for
  spawnSync('stty', ['-opost'], { stdio: [input.fd, 'ignore', 'ignore'] });
}

export class RawTerminal {
  private wasRaw: boolean | undefined;
  private readonly onExit = (): void => this.restore();

  constructor(
    private readonly input: TtyInput,
    private readonly hooks: ExitHooks = process,
    private readonly rawOutput: (input: TtyInput) => void = outputPostProcessingOff,
  ) {}

  /** Puts the input terminal in raw mode; false when it is not a terminal (nothing changed). */
  enter(): boolean {
    if (this.wasRaw !== undefined) return true;
    if (!this.input.isTTY || typeof this.input.setRawMode !== 'function') return false;
    const was = Boolean(this.input.isRaw);
    this.input.setRawMode(true);
    this.wasRaw = was;
    this.hooks.on('exit', this.onExit);
    if (!was) this.rawOutput(this.input);
    return true;
  }

  /** Puts the terminal back as enter() found it. Safe to call any number of times. */
  restore(): void {
    if (this.wasRaw === undefined) return;
    const was = this.wasRaw;
    this.wasRaw = undefined;
    this.hooks.off('exit', this.onExit);
    try {
      this.input.setRawMode?.(was);
    } catch {
      // the terminal is gone (hang-up): there is nothing left to restore
    }
  }
}

export interface ExecArgs {
  command: string[];
  /** undefined: decide from stdin and stdout */
  tty: boolean | undefined;
}

/**
 * `berth exec [--tty|-t|--no-tty] [--] CMD [ARGS...]`, read without the option parser (srun
 * runs it once per task). Options count only before the command; the last one wins.
 */
export function parseExecArgs(args: readonly string[]): ExecArgs {
  let tty: boolean | undefined;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === '--tty' || a === '-t') tty = true;
    else if (a === '--no-tty') tty = false;
    else break;
  }
  if (args[i] === '--') i++;
  return { command: args.slice(i), tty };
}
