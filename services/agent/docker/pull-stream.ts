// Reads a Docker pull progress stream (JSON lines). The pull failed if any line carries an
// `error`; it stalled if no line arrived for `inactivityMs`; it took too long after `timeoutMs`.
import type { Readable } from 'node:stream';

export class PullStreamError extends Error {
  override readonly name = 'PullStreamError';
  constructor(message: string, readonly kind: 'error' | 'inactive' | 'timeout') {
    super(message);
  }
}

export function consumePullStream(stream: Readable, timeoutMs: number, inactivityMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      clearTimeout(idle);
      if (err) {
        stream.destroy();
        reject(err);
      } else resolve();
    };
    const overall = setTimeout(() => finish(new PullStreamError(`pull did not finish within ${timeoutMs / 1000} s`, 'timeout')), timeoutMs);
    let idle = setTimeout(() => undefined, 0);
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(new PullStreamError(`pull made no progress for ${inactivityMs / 1000} s`, 'inactive')), inactivityMs);
    };
    const handleLine = (line: string): void => {
      if (!line.trim()) return;
      let msg: { error?: string; errorDetail?: { message?: string } };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.error || msg.errorDetail) finish(new PullStreamError(msg.errorDetail?.message ?? msg.error ?? 'pull failed', 'error'));
    };
    armIdle();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      armIdle();
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        handleLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
    stream.on('end', () => {
      handleLine(buffered);
      finish();
    });
    stream.on('error', (err) => finish(err));
  });
}
