/**
 * Promises waiting for a condition that some event later settles (e.g. "the
 * link is connected and subscribed"), each with its own time-out. Shared by
 * the device link and the manager transport.
 */

/** A set of waiters settled together. */
export class Waiters {
  private readonly pending = new Set<{ resolve: () => void; reject: (e: Error) => void }>();

  /** Wait until `settle`; after `timeoutMs` reject with `onTimeout()`. */
  wait(timeoutMs: number, onTimeout: () => Error): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.pending.delete(w);
        reject(onTimeout());
      }, timeoutMs);
      this.pending.add(w);
    });
  }

  /** Resolve every waiter, or reject them all with `err`. */
  settle(err: Error | null): void {
    for (const w of this.pending) err ? w.reject(err) : w.resolve();
    this.pending.clear();
  }
}
