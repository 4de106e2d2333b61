/** Small helpers shared by the benchmarks: percentiles and timing. */

/** p-th percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Round to `digits` decimals for printing. */
export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Operations per second of `fn` run for about `ms` milliseconds. */
export function opsPerSecond(fn: () => void, ms = 1000): number {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

/** p50/p99/max of latencies in milliseconds. */
export function latencySummary(ms: readonly number[]): { n: number; p50Ms: number; p99Ms: number; maxMs: number } {
  return { n: ms.length, p50Ms: round(percentile(ms, 50)), p99Ms: round(percentile(ms, 99)), maxMs: round(Math.max(...ms)) };
}
