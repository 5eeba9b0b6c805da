// When the reconcile at start cannot ask Slurm (slurmctld down or still starting, as after a
// node reboot), ended jobs' containers would otherwise run on until the periodic orphan sweep,
// minutes later. This asks again on a backoff (2 s doubling to 60 s) until Slurm answers: timers
// exist only while Slurm is not answering, so an idle, healthy node is not woken.
import { errorMessage } from '../../shared/errors';

interface Log {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

/** what one reconcile did; `skipped` set when Slurm could not be asked */
export interface ReconcileResult { checked: number; removed: string[]; settled: string[]; skipped?: string }

export function retryReconcile(
  reconcile: () => Promise<ReconcileResult>,
  log: Log,
  stopped: () => boolean,
  delaysMs: { firstMs: number; maxMs: number } = { firstMs: 2000, maxMs: 60_000 },
): { done: Promise<ReconcileResult | undefined> } {
  let delay = delaysMs.firstMs;
  let attempt = 1;
  const done = new Promise<ReconcileResult | undefined>((resolve) => {
    const tick = (): void => {
      if (stopped()) { resolve(undefined); return; }
      attempt++;
      const again = (error: string): void => {
        log.warn('still cannot reconcile with Slurm', { attempt, error, nextInSeconds: delay / 1000 });
        setTimeout(tick, delay).unref();
        delay = Math.min(delay * 2, delaysMs.maxMs);
      };
      reconcile().then((r) => {
        if (r.skipped !== undefined) { again(r.skipped); return; }
        log.info('reconciled with Slurm', { attempt, jobs: r.checked, ended: r.removed, spooledEpilogs: r.settled });
        resolve(r);
      }, (err: unknown) => again(errorMessage(err)));
    };
    setTimeout(tick, delay).unref();
    delay = Math.min(delay * 2, delaysMs.maxMs);
  });
  return { done };
}
