/**
 * The one place that decides whether a step may run: structural checks and
 * the claim-16 ordering rules for a schedule, the per-device order a device
 * enforces on itself, and the fleet-level readiness the manager enforces.
 */
import { ProtocolError } from './errors.ts';
import type { Effect, Role, Schedule, StepDef } from './steps.ts';

/** Result of validating a schedule: hard violations throw; soft ones are warnings. */
export interface ScheduleReport {
  /** Each role's steps in the order one device performs them. */
  readonly sequence: Readonly<Record<Role, readonly string[]>>;
  readonly warnings: readonly string[];
}

const otherRole = (role: Role): Role => (role === 'server' ? 'client' : 'server');

/** Look a step up by id, failing with a clear error. */
export function stepOf(schedule: Schedule, id: string): StepDef {
  const step = schedule.steps.find((s) => s.id === id);
  if (!step) {
    throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}" has no step "${id}"; known: ${schedule.steps.map((s) => s.id).join(', ')}`);
  }
  return step;
}

/** Each role's steps in per-device order (the chain of `self` prerequisites). */
export function deviceSequence(schedule: Schedule, role: Role): string[] {
  const mine = schedule.steps.filter((s) => s.role === role);
  const selfPrev = (s: StepDef) => s.after.filter((p) => p.scope === 'self').map((p) => p.step);
  const firsts = mine.filter((s) => selfPrev(s).length === 0);
  if (mine.length > 0 && firsts.length !== 1) {
    throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": the ${role} steps must form one chain of self prerequisites; found ${firsts.length} starting steps (${firsts.map((s) => s.id).join(', ') || 'none'})`);
  }
  const order: string[] = [];
  let current = firsts[0];
  while (current) {
    order.push(current.id);
    const next = mine.filter((s) => selfPrev(s).includes(current!.id));
    if (next.length > 1) {
      throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": steps ${next.map((s) => s.id).join(' and ')} both follow ${current.id} on the same device`);
    }
    current = next[0];
  }
  if (order.length !== mine.length) {
    const missing = mine.filter((s) => !order.includes(s.id)).map((s) => s.id);
    throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": ${role} steps ${missing.join(', ')} are not on the device chain (each needs exactly one self prerequisite)`);
  }
  return order;
}

/** Set of step ids reachable from `id` along edges, with the number of peer hops taken. */
function reachable(schedule: Schedule, id: string, strengths: ReadonlySet<string>): Map<string, Set<number>> {
  const found = new Map<string, Set<number>>();
  const walk = (stepId: string, hops: number, seen: Set<string>) => {
    for (const p of stepOf(schedule, stepId).after) {
      if (!strengths.has(p.strength)) continue;
      const h = hops + (p.scope === 'peers' ? 1 : 0);
      const key = `${p.step}@${h}`;
      if (seen.has(key) || h > 2) continue;
      seen.add(key);
      const set = found.get(p.step) ?? new Set<number>();
      set.add(h);
      found.set(p.step, set);
      walk(p.step, h, seen);
    }
  };
  walk(id, 0, new Set());
  return found;
}

/** True if the device (hops 0) or every direct peer (hops 1) has applied `effect` before `step` runs. */
function guaranteed(schedule: Schedule, step: StepDef, effectIndex: number, effect: Effect | Effect[], hops: 0 | 1, strengths: ReadonlySet<string>): boolean {
  const wanted = Array.isArray(effect) ? effect : [effect];
  if (hops === 0 && step.effects.slice(0, effectIndex).some((e) => wanted.includes(e))) return true;
  for (const [id, hopSet] of reachable(schedule, step.id, strengths)) {
    if (hopSet.has(hops) && stepOf(schedule, id).effects.some((e) => wanted.includes(e))) return true;
  }
  return false;
}

const REQUIRED = new Set(['required']);
const ALL = new Set(['required', 'preferred']);

/**
 * Validate a schedule against the structural rules and PROTOCOL.md's
 * ordering (claim 16 plus the clean-up rules). Throws E_SCHEDULE_INVALID or
 * E_SCHEDULE_ORDER naming the step and the missing prerequisite.
 */
export function validateSchedule(schedule: Schedule): ScheduleReport {
  const ids = new Set<string>();
  for (const s of schedule.steps) {
    if (ids.has(s.id)) throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": step id ${s.id} is used twice`);
    ids.add(s.id);
    if (s.effects.length === 0) throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": step ${s.id} has no effect`);
  }
  for (const s of schedule.steps) {
    for (const p of s.after) {
      const target = stepOf(schedule, p.step);
      const expectedRole = p.scope === 'self' ? s.role : otherRole(s.role);
      if (target.role !== expectedRole) {
        throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": step ${s.id} (${s.role}) waits on ${p.step} with scope ${p.scope}, but ${p.step} is a ${target.role} step`);
      }
    }
  }
  const sequence = { server: deviceSequence(schedule, 'server'), client: deviceSequence(schedule, 'client') };
  const warnings: string[] = [];
  const fail = (step: StepDef, rule: string) => {
    throw new ProtocolError('E_SCHEDULE_ORDER', `schedule "${schedule.name}": step ${step.id} (${step.role}) ${rule}`, { step: step.id });
  };
  // K1 as a trust anchor for verifying peers; and K1 as the anchor a device verifies its own new leaf with, which in a
  // separate-roots schedule lives in the issuer slots (the root that signs the device's own certificate).
  const k1Trust: Effect[] = ['store-distribution', 'store-new-root'];
  const k1Own: Effect[] = schedule.root ? ['store-issuer-distribution', 'store-issuer-new-root'] : k1Trust;
  const kinds = new Set(schedule.steps.flatMap((s) => s.effects.map(kindOf)));
  if (kinds.size > 1) {
    throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}" mixes ${[...kinds].join(' and ')} effects; a rollback undoes a forward schedule, and a catch-up and a renewal each stand alone, each in a schedule of its own`);
  }
  checkRootSides(schedule);
  for (const step of schedule.steps) {
    step.effects.forEach((effect, i) => {
      switch (effect) {
        case 'store-new-root':
          if (!guaranteed(schedule, step, i, 'store-distribution', 0, REQUIRED)) fail(step, 'stores R1 before D: R1 can only be verified with the key of a stored D');
          break;
        case 'install-server-cert':
          if (!guaranteed(schedule, step, i, k1Own, 0, REQUIRED)) fail(step, 'installs Sn before the server trusts K1 (P4 not before P1)');
          if (!guaranteed(schedule, step, i, k1Trust, 1, REQUIRED)) fail(step, 'installs Sn before every client trusts K1 (P4 only after P2 is complete on every client)');
          break;
        case 'install-client-cert':
          if (!guaranteed(schedule, step, i, k1Own, 0, REQUIRED)) fail(step, 'installs Cn before the client trusts K1 (P3 not before P2)');
          if (schedule.root && !guaranteed(schedule, step, i, k1Trust, 1, REQUIRED)) {
            fail(step, 'installs Cn before every server trusts the new client root key (separate roots: the verifying side first [0144-0145])');
          }
          if (!guaranteed(schedule, step, i, k1Trust, 1, ALL)) {
            warnings.push(`step ${step.id}: clients present Cn before servers trust K1; every connection pays one fallback handshake until they do [0094]`);
          }
          break;
        case 'drop-old-roots': {
          if (!guaranteed(schedule, step, i, 'store-new-root', 0, REQUIRED)) fail(step, 'deletes R0 before storing R1');
          const peerCert: Effect = step.role === 'server' ? 'install-client-cert' : 'install-server-cert';
          if (!guaranteed(schedule, step, i, peerCert, 1, REQUIRED)) fail(step, `deletes R0 while a ${otherRole(step.role)} may still present a certificate signed by K0 (needs every peer's ${peerCert})`);
          break;
        }
        case 'store-issuer-new-root':
          if (!guaranteed(schedule, step, i, 'store-issuer-distribution', 0, REQUIRED)) fail(step, 'stores its issuer R1 before the issuer D: R1 can only be verified with the key of a stored D');
          break;
        case 'drop-old-issuer-roots': {
          if (!guaranteed(schedule, step, i, 'store-issuer-new-root', 0, REQUIRED)) fail(step, 'deletes its old issuer root before storing the new one');
          const ownCert: Effect = step.role === 'server' ? 'install-server-cert' : 'install-client-cert';
          if (!guaranteed(schedule, step, i, ownCert, 0, REQUIRED)) fail(step, `deletes its old issuer root while it still presents a certificate issued by it (needs its own ${ownCert} first)`);
          break;
        }
        case 'drop-old-client-cert':
          if (!guaranteed(schedule, step, i, 'install-client-cert', 0, REQUIRED)) fail(step, 'deletes the old client certificate before a new one is installed');
          if (!guaranteed(schedule, step, i, k1Trust, 1, REQUIRED)) fail(step, 'deletes the old client certificate while a server may still reject Cn (needs every server to trust K1)');
          break;
        case 'rollback-client-cert':
          if (step.role !== 'client') {
            throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": step ${step.id} (${step.role}) rolls back a client certificate, but only clients hold one next to a fallback`);
          }
          break;
        case 'rollback-roots':
          if (step.role === 'server' && !guaranteed(schedule, step, i, 'rollback-client-cert', 1, REQUIRED)) {
            fail(step, 'forgets K1 while a client may still present Cn (a server drops D only after every client\'s rollback-client-cert)');
          }
          if (step.role === 'client' && !guaranteed(schedule, step, i, 'rollback-client-cert', 0, REQUIRED)) {
            fail(step, 'forgets K1 before restoring its old certificate (the client recognises Cn by the stored D, so rollback-client-cert comes first)');
          }
          break;
        case 'catch-up':
          // Safe on its own: never part of a running rotation (the manager sends it only when no rotation is open and
          // every peer trusts only the latest root), and the device verifies every link from the root it already trusts.
          if (step.effects.length !== 1) {
            throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": step ${step.id} combines catch-up with other effects; catch-up replaces roots and identity in one step of its own`);
          }
          break;
        case 'renew-cert':
          // Safe without prerequisites: the renewed leaf is signed by the root every peer already trusts, so no peer
          // can reject it whichever device switches first; a schedule of its own, started only when nothing is open.
          if (step.effects.length !== 1) {
            throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": step ${step.id} combines renew-cert with other effects; a renewal changes only the device certificate, in a step of its own`);
          }
          break;
        case 'store-distribution':
        case 'store-issuer-distribution':
          break;
      }
    });
  }
  return { sequence, warnings };
}

const ISSUER_EFFECTS: readonly Effect[] = ['store-issuer-distribution', 'store-issuer-new-root', 'drop-old-issuer-roots'];
const PEER_TRUST_EFFECTS: readonly Effect[] = ['store-distribution', 'store-new-root', 'drop-old-roots'];

/**
 * Separate roots ([0144-0145]): in a schedule that rotates one side's root,
 * only the presenting side (the role that root signs) touches its issuer
 * anchors and its certificate, and only the verifying side touches its peer
 * trust store; the other side's certificates never change. A single-root
 * schedule has no issuer effects (its one root is both).
 */
function checkRootSides(schedule: Schedule): void {
  const bad = (step: StepDef, why: string) => {
    throw new ProtocolError('E_SCHEDULE_INVALID', `schedule "${schedule.name}": step ${step.id} (${step.role}) ${why}`);
  };
  for (const step of schedule.steps) {
    for (const e of step.effects) {
      if (!schedule.root) {
        if (ISSUER_EFFECTS.includes(e)) bad(step, `has ${e}, but the schedule names no root side ("root": "client" or "server"); a single-root fleet has no separate issuer root`);
        continue;
      }
      const presenting = schedule.root;
      if (kindOf(e) !== 'forward') bad(step, `has ${e}; a ${presenting}-root schedule is a forward rotation of one root only`);
      if (ISSUER_EFFECTS.includes(e) && step.role !== presenting) bad(step, `has ${e}, but only ${presenting}s hold the ${presenting} root as their issuer`);
      if (PEER_TRUST_EFFECTS.includes(e) && step.role === presenting) bad(step, `has ${e}, but ${presenting}s do not verify peers with the ${presenting} root (they trust the other root)`);
      if ((e === 'install-client-cert' || e === 'drop-old-client-cert') && presenting !== 'client') bad(step, `has ${e}, but a ${presenting}-root rotation changes no client certificate`);
      if (e === 'install-server-cert' && presenting !== 'server') bad(step, `has ${e}, but a ${presenting}-root rotation changes no server certificate`);
      if ((e === 'install-client-cert' || e === 'install-server-cert') && step.role !== presenting) bad(step, `has ${e}, but in a ${presenting}-root rotation only ${presenting}s get a new certificate`);
    }
  }
}

/** Which family an effect belongs to: forward rotation, rollback, catch-up or renewal (never mixed in one schedule). */
function kindOf(effect: Effect): 'forward' | 'rollback' | 'catch-up' | 'renew' {
  if (effect === 'rollback-client-cert' || effect === 'rollback-roots') return 'rollback';
  if (effect === 'renew-cert') return 'renew';
  return effect === 'catch-up' ? 'catch-up' : 'forward';
}

/**
 * The forward steps after which a rotation can no longer be rolled back:
 * once a server presents Sn or a device dropped R0, the old state cannot
 * be restored without a handshake failing, so abort means "stop here".
 */
export function rollbackBlockedBy(schedule: Schedule): string[] {
  return schedule.steps.filter((s) => s.effects.some((e) => e === 'install-server-cert' || e === 'drop-old-roots')).map((s) => s.id);
}

/**
 * Device-side order check: may a device of `role`, having completed
 * `completed` in this rotation, apply `stepId` now? Throws E_WRONG_ROLE or
 * E_OUT_OF_ORDER naming the current step, the target and what it waits for.
 */
export function checkLocalOrder(schedule: Schedule, role: Role, stepId: string, completed: readonly string[]): void {
  const step = stepOf(schedule, stepId);
  if (step.role !== role) {
    throw new ProtocolError('E_WRONG_ROLE', `step ${stepId} is a ${step.role} step but this device is a ${role}`);
  }
  const sequence = deviceSequence(schedule, role);
  const position = sequence.indexOf(stepId);
  const expected = sequence[completed.length];
  if (sequence.slice(0, completed.length).some((id, i) => completed[i] !== id)) {
    throw new ProtocolError('E_OUT_OF_ORDER', `device history [${completed.join(', ')}] is not a prefix of the ${schedule.name} ${role} sequence [${sequence.join(', ')}]`);
  }
  if (position !== completed.length) {
    const current = completed[completed.length - 1] ?? 'none';
    const waits = step.after.filter((p) => p.scope === 'self').map((p) => p.step);
    throw new ProtocolError('E_OUT_OF_ORDER', `cannot switch to step ${stepId}: current step is ${current}, next allowed is ${expected ?? 'none (rotation complete)'}; ${stepId} requires ${waits.join(', ') || 'nothing'} first`, { current, target: stepId, expected: expected ?? null });
  }
}

/** What the manager knows about acknowledgements, as a predicate. */
export type AckedFn = (deviceId: string, stepId: string) => boolean;

/**
 * Fleet-level readiness in O(prerequisites): `selfAcked(step)` says whether
 * the device acknowledged a step, `peersAcked(step)` whether every peer did.
 * Same rule as `blockers`, which also names who is missing.
 */
export function isReady(schedule: Schedule, stepId: string, selfAcked: (step: string) => boolean, peersAcked: (step: string) => boolean, opts: { honourPreferred?: boolean } = {}): boolean {
  return stepOf(schedule, stepId).after.every((p) =>
    (p.strength === 'preferred' && opts.honourPreferred === false) || (p.scope === 'self' ? selfAcked(p.step) : peersAcked(p.step)));
}

/**
 * Fleet-level readiness: may `stepId` be sent to `deviceId` now? Every self
 * prerequisite must be acknowledged by the device and every peer
 * prerequisite by every peer. Returns the blockers (empty means ready).
 */
export function blockers(schedule: Schedule, stepId: string, deviceId: string, peers: readonly string[], acked: AckedFn, opts: { honourPreferred?: boolean } = {}): string[] {
  const out: string[] = [];
  for (const p of stepOf(schedule, stepId).after) {
    if (p.strength === 'preferred' && opts.honourPreferred === false) continue;
    if (p.scope === 'self') {
      if (!acked(deviceId, p.step)) out.push(`${deviceId}:${p.step}`);
    } else {
      for (const peer of peers) if (!acked(peer, p.step)) out.push(`${peer}:${p.step}`);
    }
  }
  return out;
}
