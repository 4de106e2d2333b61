/**
 * The rotation step graph as data (PROTOCOL.md "Steps" and "Batched
 * schedule"). A schedule is a list of steps; each names the mTLS role that
 * performs it, the trust-store effects it applies in order, and the
 * acknowledgements it waits for. Only `schedule.ts` interprets these tables.
 */

/** The device's role in the mTLS relationship being rotated [0045]. */
export type Role = 'server' | 'client';

/**
 * Which root of a separate-roots fleet a schedule rotates ([0144-0145]):
 * the client root signs client certificates and servers trust it; the
 * server root signs server certificates and clients trust it.
 */
export type RootSide = 'client' | 'server';

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
  /**
   * Separate roots, presenting side: verify D of the root that issues this
   * device's own certificate with that root's current certificate, and keep
   * it next to it (the issuer anchors, never used to verify peers).
   */
  | 'store-issuer-distribution'
  /** Separate roots, presenting side: verify that root's R1 with the stored issuer D and keep it. */
  | 'store-issuer-new-root'
  /** Separate roots, presenting side: the issuer R1 becomes the issuer root; its R0 and D are deleted. */
  | 'drop-old-issuer-roots'
  /** Delete the old client certificate kept as fallback. */
  | 'drop-old-client-cert'
  /**
   * Rollback (client): if the active certificate was installed by this
   * rotation and the old one is kept as fallback, make the old one active
   * again and drop the new one; otherwise no change.
   */
  | 'rollback-client-cert'
  /** Rollback: drop D and R1 if stored; the current root R0 stays. Otherwise no change. */
  | 'rollback-roots'
  /**
   * Catch-up of a device that missed one or more rotations: verify a chain
   * of (D, R) links from the current root to the fleet's root and a new
   * certificate under it; then trust only that root and present only that
   * certificate.
   */
  | 'catch-up'
  /**
   * Renewal of the device's certificate under the root it trusts now (no
   * root changes): verify the new leaf with the current root, for the
   * device's own key and role, and living longer than the active one; then
   * present only the new certificate.
   */
  | 'renew-cert';

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
  /**
   * Separate-roots fleets only: the root this schedule rotates. Absent: the
   * fleet's single root, which signs both sides' certificates.
   */
  readonly root?: RootSide;
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

/**
 * Undo a six-step rotation aborted before any server replaced its
 * certificate (before P4): clients stop presenting Cn and forget D (X1),
 * then servers forget D (X2). Clients first, so no client presents a
 * certificate signed by K1 to a server that no longer trusts K1.
 */
export const SIX_STEP_ROLLBACK: Schedule = {
  name: 'six-step-rollback',
  steps: [
    { id: 'X1', role: 'client', effects: ['rollback-client-cert', 'rollback-roots'], after: [],
      doc: 'Client presents its old certificate again, drops Cn, and deletes D (and R1); R0 stays.' },
    { id: 'X2', role: 'server', effects: ['rollback-roots'], after: [req('X1', 'peers')],
      doc: 'Server deletes D once no client presents Cn any more; R0 stays.' },
  ],
};

/**
 * Undo a batched rotation aborted before B2: clients undo B1 (Y1), then
 * every server confirms (Y2, a no-op for a server that never got B2).
 */
export const BATCHED_ROLLBACK: Schedule = {
  name: 'batched-rollback',
  steps: [
    { id: 'Y1', role: 'client', effects: ['rollback-client-cert', 'rollback-roots'], after: [],
      doc: 'Client presents its old certificate again, drops Cn, and deletes D and R1; R0 stays.' },
    { id: 'Y2', role: 'server', effects: ['rollback-roots'], after: [req('Y1', 'peers')],
      doc: 'Server confirms it holds only R0 (no change unless it stored D or R1).' },
  ],
};

/** The rollback schedule of each forward schedule, by the forward schedule's name. */
export const ROLLBACK_OF: Readonly<Record<string, Schedule>> = {
  [SIX_STEP.name]: SIX_STEP_ROLLBACK,
  [BATCHED.name]: BATCHED_ROLLBACK,
};

/** The forward schedule a rollback schedule undoes, by the rollback schedule's name. */
export const FORWARD_OF: Readonly<Record<string, Schedule>> = {
  [SIX_STEP_ROLLBACK.name]: SIX_STEP,
  [BATCHED_ROLLBACK.name]: BATCHED,
};

/**
 * Bring one device that missed one or more rotations to the fleet's current
 * root and a certificate under it, in one verified step. Sent only when no
 * rotation is open and every peer already trusts only the latest root, so
 * it is never part of a running rotation; the device verifies every link
 * from the root it already trusts (never trust on first use).
 */
export const CATCH_UP: Schedule = {
  name: 'catch-up',
  steps: [
    { id: 'C1', role: 'server', effects: ['catch-up'], after: [],
      doc: 'Server verifies D/R links from its current root to the fleet root and its new Sn; then trusts only the fleet root.' },
    { id: 'C2', role: 'client', effects: ['catch-up'], after: [],
      doc: 'Client verifies D/R links from its current root to the fleet root and its new Cn; then trusts only the fleet root.' },
  ],
};

/**
 * Renew device certificates under the fleet's current root: one step per
 * device, with no prerequisites. No ordering is needed because nothing any
 * peer verifies changes: every peer already trusts the root that signs the
 * new leaf (the same root that signed the old one), so a server that
 * switches to its renewed certificate and a client that presents its
 * renewed one are accepted by every peer at once, in any order. Started
 * only when no rotation is open; a device refuses it while another rotation
 * is open on it (E_ROTATION_IN_PROGRESS). There is no rollback: the old and
 * the new certificate are both valid under the same root.
 */
export const RENEW: Schedule = {
  name: 'renew',
  steps: [
    { id: 'RS', role: 'server', effects: ['renew-cert'], after: [],
      doc: 'Server verifies its renewed certificate with the root it trusts now and replaces its certificate with it.' },
    { id: 'RC', role: 'client', effects: ['renew-cert'], after: [],
      doc: 'Client verifies its renewed certificate with the root it trusts now and presents only it (the old one is dropped).' },
  ],
};

/**
 * Separate roots, client root only ([0144-0145]): the verifying side
 * (servers) learns the new client root key before any client presents a
 * certificate under it, and forgets the old one only after every client
 * presents its new certificate. No server certificate changes.
 */
export const CLIENT_ROOT: Schedule = {
  name: 'client-root',
  root: 'client',
  steps: [
    { id: 'CR1', role: 'server', effects: ['store-distribution'], after: [],
      doc: 'Server stores Dc after verifying it with the old client root; trusts the new client root key next to it.' },
    { id: 'CR2', role: 'client', effects: ['store-issuer-distribution'], after: [],
      doc: 'Client stores Dc next to the old client root it was issued by (verified with it), to verify its Cn with.' },
    { id: 'CR3', role: 'client', effects: ['install-client-cert'], after: [req('CR2', 'self'), req('CR1', 'peers')],
      doc: 'Client stores Cn (verified with the new client root key), presents it first and keeps the old one as fallback, once every server trusts that key.' },
    { id: 'CR4', role: 'server', effects: ['store-new-root', 'drop-old-roots'], after: [req('CR1', 'self'), req('CR3', 'peers')],
      doc: 'Server stores the new client root (verified with Dc) and deletes the old one and Dc once every client presents Cn.' },
    { id: 'CR5', role: 'client', effects: ['store-issuer-new-root', 'drop-old-issuer-roots', 'drop-old-client-cert'], after: [req('CR3', 'self'), req('CR1', 'peers')],
      doc: 'Client stores the new client root as its issuer anchor, deletes the old one, Dc and its old certificate.' },
  ],
};

/**
 * Separate roots, server root only: the mirror of `client-root`. Clients
 * learn the new server root key first; a server switches to Sn only once
 * every client trusts that key; clients forget the old server root only
 * after every server presents Sn. No client certificate changes.
 */
export const SERVER_ROOT: Schedule = {
  name: 'server-root',
  root: 'server',
  steps: [
    { id: 'SR1', role: 'client', effects: ['store-distribution'], after: [],
      doc: 'Client stores Ds after verifying it with the old server root; trusts the new server root key next to it.' },
    { id: 'SR2', role: 'server', effects: ['store-issuer-distribution'], after: [],
      doc: 'Server stores Ds next to the old server root it was issued by (verified with it), to verify its Sn with.' },
    { id: 'SR3', role: 'server', effects: ['install-server-cert'], after: [req('SR2', 'self'), req('SR1', 'peers')],
      doc: 'Server replaces its certificate with Sn (verified with the new server root key) only once every client trusts that key [0093].' },
    { id: 'SR4', role: 'client', effects: ['store-new-root', 'drop-old-roots'], after: [req('SR1', 'self'), req('SR3', 'peers')],
      doc: 'Client stores the new server root (verified with Ds) and deletes the old one and Ds once every server presents Sn.' },
    { id: 'SR5', role: 'server', effects: ['store-issuer-new-root', 'drop-old-issuer-roots'], after: [req('SR3', 'self')],
      doc: 'Server stores the new server root as its issuer anchor and deletes the old one and Ds.' },
  ],
};

/** The schedules devices accept by default: the ones that pass the ordering rules. */
export const SAFE_SCHEDULES: Readonly<Record<string, Schedule>> = {
  [SIX_STEP.name]: SIX_STEP,
  [BATCHED.name]: BATCHED,
  [SIX_STEP_ROLLBACK.name]: SIX_STEP_ROLLBACK,
  [BATCHED_ROLLBACK.name]: BATCHED_ROLLBACK,
  [CATCH_UP.name]: CATCH_UP,
  [RENEW.name]: RENEW,
  [CLIENT_ROOT.name]: CLIENT_ROOT,
  [SERVER_ROOT.name]: SERVER_ROOT,
};

/** The schedule that rotates one root of a separate-roots fleet, by side. */
export const SIDE_SCHEDULES: Readonly<Record<RootSide, Schedule>> = {
  client: CLIENT_ROOT,
  server: SERVER_ROOT,
};

/** Every schedule by name, the unsafe contrast included (demo and tests only). */
export const SCHEDULES: Readonly<Record<string, Schedule>> = {
  ...SAFE_SCHEDULES,
  [NAIVE.name]: NAIVE,
};
