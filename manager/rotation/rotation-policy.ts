/**
 * How patiently the orchestrator drives devices: time-outs, retries with
 * back-off, and whether `preferred` ordering edges are honoured.
 */

/** Retry and pacing policy. */
export interface RotationPolicy {
  /** How long to wait for an acknowledgement before resending. */
  ackTimeoutMs: number;
  /** Attempts per step (first send included) before the rotation stops. */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How often in-flight steps are checked for time-outs and due retries. */
  sweepIntervalMs: number;
  /** Honour `preferred` edges (P1 → P3) to avoid fallback handshakes. */
  honourPreferred: boolean;
}

/** Defaults for a real fleet: devices on slow links, a few retries. */
export const DEFAULT_POLICY: RotationPolicy = {
  ackTimeoutMs: 30_000, maxAttempts: 5, backoffBaseMs: 2_000, backoffMaxMs: 120_000, sweepIntervalMs: 1_000, honourPreferred: true,
};
