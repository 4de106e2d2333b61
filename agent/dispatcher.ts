/**
 * The only entry for commands on the device: validate, de-duplicate,
 * check order, apply the step's effects to a draft, persist durably, and
 * only then build the acknowledgement (PROTOCOL.md device rules 1-4).
 * Rollback commands carry their forward rotation's id and are accepted
 * until the device replaced its server certificate or dropped R0; a
 * catch-up supersedes whatever rotation the device is stuck in, once its
 * chain verifies from the root the device trusts.
 */
import { createHash } from 'node:crypto';
import { signedBytes } from '../protocol/command-signature.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { RESULT_HISTORY } from '../protocol/limits.ts';
import { assertCommand, type Command } from '../protocol/messages/command.ts';
import type { Ack } from '../protocol/messages/ack.ts';
import { checkLocalOrder, deviceSequence, rollbackBlockedBy, stepOf } from '../protocol/schedule.ts';
import { CATCH_UP, FORWARD_OF, RENEW, SCHEDULES, type Schedule } from '../protocol/steps.ts';
import { parseWire } from '../protocol/validate.ts';
import type { DeviceRecord } from './device-record.ts';
import { hasSeparateRoots, summarize } from './device-record.ts';
import type { OwnKey } from './effects/context.ts';
import { EFFECT_HANDLERS } from './effects/index.ts';

/** Everything the dispatcher needs from the agent around it. */
export interface DispatchContext {
  record: DeviceRecord;
  schedules: Readonly<Record<string, Schedule>>;
  now: Date;
  ownKeys: () => Promise<OwnKey[]>;
  /** Verifies the manager's signature; throws E_SIGNATURE. Absent = not required. */
  verifySignature?: (cmd: Command, signedBytes: Buffer) => void;
  /** Durably store the new record (`storeHash` is its trustHash); the ack is released only after it resolves. */
  persist: (next: DeviceRecord, cmd: Command, storeHash: string) => Promise<void>;
  /** Adds the device's signature to an acknowledgement (before it is stored, so redeliveries repeat it exactly). */
  signAck?: (ack: Ack) => Promise<Ack>;
}

/** What a dispatch produced: the ack to send, and whether the record changed. */
export interface DispatchResult {
  ack: Ack;
  changed: boolean;
  /** The parsed command when it was well-formed enough to name one. */
  command: Command | null;
}

/** Hash that identifies a command's content for redelivery detection: SHA-256 of the signed bytes (signature excluded). */
export function commandHash(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function errorAck(record: DeviceRecord, cmd: Partial<Command> | null, err: ProtocolError, now: Date): Ack {
  return {
    v: 1,
    kind: 'ack',
    deviceId: record.deviceId,
    rotationId: typeof cmd?.rotationId === 'string' && cmd.rotationId.length > 0 ? cmd.rotationId.slice(0, 128) : '-',
    seq: Number.isSafeInteger(cmd?.seq) && (cmd!.seq as number) >= 0 ? (cmd!.seq as number) : 0,
    step: typeof cmd?.step === 'string' && cmd.step.length > 0 ? cmd.step.slice(0, 16) : '-',
    ok: false,
    error: { code: err.code, message: err.reason.slice(0, 2048) },
    state: summarize(record),
    at: now.toISOString(),
  };
}

/**
 * Where the device stands for `cmd`: the steps it already completed under
 * the command's schedule, and whether the step's effects apply (a rollback
 * of a rotation this device never joined is a recorded no-op). Throws when
 * the command does not fit the device's rotation state.
 */
function standing(record: DeviceRecord, cmd: Command, schedule: Schedule, schedules: Readonly<Record<string, Schedule>>): { completed: string[]; apply: boolean } {
  const rot = record.rotation;
  const same = rot !== null && rot.id === cmd.rotationId;
  const open = () => {
    if (!rot || same) return false;
    const known = schedules[rot.schedule] ?? SCHEDULES[rot.schedule] ?? schedule;
    return rot.completed.length < deviceSequence(known, record.role).length;
  };
  const inProgress = () => new ProtocolError('E_ROTATION_IN_PROGRESS', `rotation ${rot!.id} is still open here (done: ${rot!.completed.join(', ') || 'none'}); refusing ${cmd.rotationId}`);
  if (same && rot.schedule === cmd.schedule) return { completed: rot.completed, apply: true };

  if (cmd.schedule === CATCH_UP.name) {
    // Supersedes whatever rotation the device is in or stuck in: the chain is verified from the root it trusts.
    return { completed: [], apply: true };
  }
  const forward = FORWARD_OF[cmd.schedule];
  if (forward) {
    if (same && rot.schedule === forward.name) {
      const done = rollbackBlockedBy(forward).filter((id) => rot.completed.includes(id));
      if (done.length > 0) {
        throw new ProtocolError('E_ROLLBACK_TOO_LATE', `rotation ${cmd.rotationId} cannot be rolled back here: this device already completed ${done.join(', ')} (done: ${rot.completed.join(', ')}), after which its old state cannot be restored without breaking a handshake`, { completed: rot.completed, blockedBy: done });
      }
      return { completed: [], apply: true };
    }
    if (same) throw new ProtocolError('E_OUT_OF_ORDER', `rotation ${cmd.rotationId} runs schedule ${rot.schedule} here, so ${cmd.schedule} does not undo it`);
    if (open()) throw inProgress();
    // Never joined: nothing to undo, but the seq is consumed and the rollback recorded (a late forward step is then refused).
    return { completed: [], apply: false };
  }
  if (same) {
    if (FORWARD_OF[rot.schedule]?.name === cmd.schedule) {
      throw new ProtocolError('E_ROTATION_ROLLED_BACK', `rotation ${cmd.rotationId} was rolled back on this device (${rot.schedule}: ${rot.completed.join(', ')}); refusing its step ${cmd.step}`);
    }
    throw new ProtocolError('E_OUT_OF_ORDER', `rotation ${cmd.rotationId} runs schedule ${rot.schedule}, not ${cmd.schedule}`);
  }
  if (open()) throw inProgress();
  return { completed: [], apply: true };
}

/**
 * A device with separate client and server roots takes only schedules that
 * rotate one named root, and a single-root device only the others
 * (E_ROOT_LAYOUT): applied to the other layout, a step would verify against
 * or change the wrong root. A catch-up and a renewal serve both layouts:
 * the catch-up's effect checks the layout against the chains it carries
 * (agent/effects/catch-up.ts), and a renewal changes no root and checks
 * the certificate against the device's own root (its issuer root when it
 * keeps one; agent/effects/renew-cert.ts).
 */
function checkRootLayout(record: DeviceRecord, schedule: Schedule): void {
  if (schedule.name === CATCH_UP.name || schedule.name === RENEW.name) return;
  const separate = hasSeparateRoots(record);
  if (separate && !schedule.root) {
    throw new ProtocolError('E_ROOT_LAYOUT', `schedule ${schedule.name} rotates a single fleet root, but this device keeps separate client and server roots; rotate one of them (schedule client-root or server-root)`);
  }
  if (!separate && schedule.root) {
    throw new ProtocolError('E_ROOT_LAYOUT', `schedule ${schedule.name} rotates the ${schedule.root} root of a separate-roots fleet, but this device holds one fleet root`);
  }
}

/** Handle one raw command; never throws for bad input (the error goes into the ack). */
export async function dispatch(raw: Buffer | string | object, ctx: DispatchContext): Promise<DispatchResult> {
  const { record, now } = ctx;
  let parsed: unknown = null;
  try {
    parsed = typeof raw === 'object' && !Buffer.isBuffer(raw) ? raw : parseWire(raw, 'command');
    assertCommand(parsed, ctx.schedules);
    const cmd = parsed;
    if (cmd.deviceId !== record.deviceId) {
      throw new ProtocolError('E_WRONG_DEVICE', `command for ${cmd.deviceId} reached ${record.deviceId}`);
    }
    // One canonical serialization serves the signature check and the redelivery hash.
    const bytes = signedBytes(cmd);
    ctx.verifySignature?.(cmd, bytes);
    const hash = commandHash(bytes);
    if (cmd.seq <= record.lastSeq) {
      const prior = record.results.find((r) => r.seq === cmd.seq);
      const sameRotation = record.rotation?.id === cmd.rotationId;
      if (prior && sameRotation && prior.commandHash === hash) return { ack: prior.ack, changed: false, command: cmd };
      throw new ProtocolError('E_REPLAY', `sequence ${cmd.seq} is not newer than ${record.lastSeq} and does not repeat a known command (rotation ${cmd.rotationId}, step ${cmd.step})`);
    }
    const schedule = ctx.schedules[cmd.schedule]!;
    checkRootLayout(record, schedule);
    const { completed, apply } = standing(record, cmd, schedule, ctx.schedules);
    checkLocalOrder(schedule, record.role, cmd.step, completed);

    const draft: DeviceRecord = structuredClone(record);
    if (apply) {
      const ownKeys = await ctx.ownKeys();
      for (const effect of stepOf(schedule, cmd.step).effects) {
        EFFECT_HANDLERS[effect]({ draft, payload: cmd.payload, ownKeys, now });
      }
    }
    draft.rotation = { id: cmd.rotationId, schedule: cmd.schedule, completed: [...completed, cmd.step] };
    draft.lastSeq = cmd.seq;
    let ack: Ack = {
      v: 1, kind: 'ack', deviceId: record.deviceId, rotationId: cmd.rotationId, seq: cmd.seq, step: cmd.step,
      ok: true, state: summarize(draft), at: now.toISOString(),
    };
    if (ctx.signAck) ack = await ctx.signAck(ack);
    draft.results = [...record.results, { seq: cmd.seq, rotationId: cmd.rotationId, step: cmd.step, commandHash: hash, ack }].slice(-RESULT_HISTORY);
    await ctx.persist(draft, cmd, ack.state.storeHash);
    return { ack, changed: true, command: cmd };
  } catch (err) {
    const perr = err instanceof ProtocolError ? err : new ProtocolError('E_INTERNAL', `unexpected failure handling the command: ${(err as Error).message}`);
    const named = parsed !== null && typeof parsed === 'object' ? (parsed as Partial<Command>) : null;
    let ack = errorAck(record, named, perr, now);
    if (ctx.signAck) ack = await ctx.signAck(ack).catch(() => ack);
    return { ack, changed: false, command: null };
  }
}
