// Signals a client may forward to its step.
import { constants } from 'node:os';

const ALLOWED = new Set(['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGKILL', 'SIGUSR1', 'SIGUSR2', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGWINCH', 'SIGALRM', 'SIGPIPE']);

export function checkSignal(name: string): NodeJS.Signals {
  const upper = name.toUpperCase();
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (!ALLOWED.has(full) || !(full in constants.signals)) {
    throw new Error(`signal '${name}' cannot be sent to a step (allowed: ${[...ALLOWED].join(', ')})`);
  }
  return full as NodeJS.Signals;
}
