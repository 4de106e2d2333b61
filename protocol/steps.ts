/**
 * The rotation step graph as data (PROTOCOL.md "Steps" and "Batched
 * schedule"). A schedule is a list of steps; each names the mTLS role that
 * performs it, the trust-store effects it applies in order, and the
 * acknowledgements it waits for. Only `schedule.ts` interprets these tables.
 */

/** The device's role in the mTLS relationship being rotated [0045]. */
export type Role = 'server' | 'client';

/**
 * One change to a device's trust store or identity. The effects of a step are
 * applied in the listed order, all or nothing.
 */
export type Effect =
  /** Verify D (NewWithOld) with the current root R0 and trust K1 next to R0. */
  | 'store-distribution'
  /** Verify R1 (NewWithNew) with D's key and store it next to R0 and D. */
  | 'store-new-root'
  /** Verify Cn with K1; present it first, keep the old client certificate as fallback. */
  | 'install-client-cert'
  /** Verify Sn with K1; replace the one server certificate. */
  | 'install-server-cert'
  /** Delete R0 and D; R1 becomes the current root. Needs R1 stored. */
  | 'drop-old-roots'
  /** Delete the old client certificate kept as fallback. */
  | 'drop-old-client-cert';

/** Who must have acknowledged `step` before a step may start. */
export interface Prerequisite {
  readonly step: string;
  /** `self`: the same device; `peers`: every device this one talks to over mTLS. */
  readonly scope: 'self' | 'peers';
  /** `preferred` edges avoid a fallback handshake but are not needed for safety [0094]. */
  readonly strength: 'required' | 'preferred';
}

/** One step of a schedule. */
export interface StepDef {
  readonly id: string;
  readonly role: Role;
  readonly effects: readonly Effect[];
  readonly after: readonly Prerequisite[];
  /** What the step does, in PROTOCOL.md's words. */
  readonly doc: string;
}

/** A named rotation schedule. */
export interface Schedule {
  readonly name: string;
  readonly steps: readonly StepDef[];
}

const req = (step: string, scope: 'self' | 'peers'): Prerequisite => ({ step, scope, strength: 'required' });
const pref = (step: string, scope: 'self' | 'peers'): Prerequisite => ({ step, scope, strength: 'preferred' });

/**
 * First embodiment, six requests (figure 11, [0064-0097]). Each device's own
 * steps also form a chain (P1→P4→P5, P2→P3→P6) so one step is in flight per
 * device and the per-device sequence numbers follow the schedule.
 */
export const SIX_STEP: Schedule = {
  name: 'six-step',
  steps: [
    { id: 'P1', role: 'server', effects: ['store-distribution'], after: [],
      doc: 'Server stores D after verifying it with R0; trusts K1 next to R0 [0066-0067].' },
    { id: 'P2', role: 'client', effects: ['store-distribution'], after: [],
      doc: 'Client stores D after verifying it with R0 [0068-0071].' },
    { id: 'P3', role: 'client', effects: ['install-client-cert'], after: [req('P2', 'self'), pref('P1', 'peers')],
      doc: 'Client stores Cn (verified with K1), presents it first and keeps the old one as fallback [0072-0076].' },
    { id: 'P4', role: 'server', effects: ['install-server-cert'], after: [req('P1', 'self'), req('P2', 'peers')],
      doc: 'Server replaces its certificate with Sn only once every client trusts K1 [0077-0081, 0093].' },
    { id: 'P5', role: 'server', effects: ['store-new-root', 'drop-old-roots'], after: [req('P4', 'self'), req('P3', 'peers')],
      doc: 'Server stores R1 (verified with D) and deletes R0 and D once every client presents Cn [0082-0084].' },
    { id: 'P6', role: 'client', effects: ['store-new-root', 'drop-old-roots', 'drop-old-client-cert'], after: [req('P3', 'self'), req('P4', 'peers')],
      doc: 'Client stores R1 and deletes R0, D and its old certificate once every server presents Sn [0085-0088].' },
  ],
};

/**
 * Third embodiment, three requests ([0113-0131]). Cheaper to manage; until B2
 * lands each client connection pays one failed handshake with Cn [0131].
 */
export const BATCHED: Schedule = {
  name: 'batched',
  steps: [
    { id: 'B1', role: 'client', effects: ['store-distribution', 'store-new-root', 'install-client-cert'], after: [],
      doc: 'Client verifies D with R0, R1 with D, Cn with R1; stores all and keeps R0 and its old certificate.' },
    { id: 'B2', role: 'server', effects: ['store-distribution', 'store-new-root', 'install-server-cert', 'drop-old-roots'], after: [req('B1', 'peers')],
      doc: 'Server stores D, R1 and Sn, replaces its certificate and deletes R0 and D at once (clients already present Cn).' },
    { id: 'B3', role: 'client', effects: ['drop-old-roots', 'drop-old-client-cert'], after: [req('B1', 'self'), req('B2', 'peers')],
      doc: 'Client deletes R0, D and its old certificate.' },
  ],
};

/**
 * The unsafe order people use by hand: every device replaces everything at
 * once. Kept only so tests and the demo can show that the order matters; the
 * schedule validator rejects it.
 */
export const NAIVE: Schedule = {
  name: 'naive',
  steps: [
    { id: 'NS', role: 'server', effects: ['store-distribution', 'store-new-root', 'install-server-cert', 'drop-old-roots'], after: [],
      doc: 'Server replaces roots and certificate in one go.' },
    { id: 'NC', role: 'client', effects: ['store-distribution', 'store-new-root', 'install-client-cert', 'drop-old-roots', 'drop-old-client-cert'], after: [],
      doc: 'Client replaces roots and certificate in one go.' },
  ],
};

/** The schedules devices accept by default: the ones that pass the ordering rules. */
export const SAFE_SCHEDULES: Readonly<Record<string, Schedule>> = {
  [SIX_STEP.name]: SIX_STEP,
  [BATCHED.name]: BATCHED,
};

/** Every schedule by name, the unsafe contrast included (demo and tests only). */
export const SCHEDULES: Readonly<Record<string, Schedule>> = {
  ...SAFE_SCHEDULES,
  [NAIVE.name]: NAIVE,
};
