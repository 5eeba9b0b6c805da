// One in-flight operation per key: concurrent callers with the same key share one promise
// and each gets its result; the key is released when the operation settles.
export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** Runs fn unless an operation for key is already running; `shared` tells the caller which. */
  async do(key: string, fn: () => Promise<T>): Promise<{ value: T; shared: boolean }> {
    const running = this.inflight.get(key);
    if (running) return { value: await running, shared: true };
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return { value: await p, shared: false };
  }

  get size(): number {
    return this.inflight.size;
  }
}
