/**
 * Hands the start-up's garbage back to the system once the agent is up.
 * Starting builds and drops a lot (configuration checks, the HAL's key
 * loading, the first TLS contexts, the link's connect); V8's memory reducer
 * returns it on its own only after its fixed 8 s wait, and less of it. One
 * full, compacting collection of the kind V8 runs when memory is short
 * ("last resort": it also drops the bytecode of functions that only ran at
 * start and frees V8's pooled pages) takes the idle agent straight to its
 * settled size (image/README.md, "Memory"). It needs Node's `--expose-gc`,
 * which the device launcher sets (agentNodeFlags); elsewhere it does
 * nothing.
 */

/** V8's gc() as exposed by --expose-gc. */
type ExposedGc = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void;

const V8_MAJOR = Number(process.versions.v8.split('.')[0]);

/** What one release did: resident memory before and after, in bytes; null when gc() is not exposed. */
export interface StartupRelease {
  rssBefore: number;
  rssAfter: number;
  ms: number;
}

/** Runs the compacting collection now (it blocks the event loop for its duration, tens of milliseconds). */
export function releaseStartupMemory(): StartupRelease | null {
  const gc = (globalThis as { gc?: ExposedGc }).gc;
  if (typeof gc !== 'function') return null;
  const rssBefore = process.memoryUsage.rss();
  const t0 = process.hrtime.bigint();
  // V8 12 and later (Node 22+) run the last-resort kind synchronously when asked; V8 11 (Node 20)
  // reads any options as "later, as a task", so there the plain call's full collection runs now.
  if (V8_MAJOR >= 12) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else gc();
  return { rssBefore, rssAfter: process.memoryUsage.rss(), ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}
