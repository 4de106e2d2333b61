/**
 * What the orchestrator's parts share (orchestrator.ts wires them): how it
 * is built (OrchestratorOptions, OrchestratorEvents), the rotation it
 * drives now with its in-memory indexes, and the changes every part may
 * make to that rotation's status: stop it after a device failed too often,
 * count a failed attempt with back-off, pause or abort it. The parts are
 * orchestrator-send.ts (sending), orchestrator-acks.ts (applying
 * acknowledgements) and orchestrator-sweep.ts (time-outs, retries, holds).
 */
import type { Clock, Timers } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { SCHEDULES, type Schedule } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb, RotationRow, StepRow } from '../fleet/fleet-db.ts';
import type { ManagerTransport } from '../transport/transport.ts';
import type { RotationAuthority } from './authority.ts';
import type { PresenceSource } from './presence-gate.ts';
import { DEFAULT_POLICY, type RotationPolicy } from './rotation-policy.ts';
import type { RotationState } from './rotation-state.ts';

/** Events for dashboards, demos and tests. */
export interface OrchestratorEvents {
  acked?: (row: StepRow, ack: Ack) => void;
  complete?: (rotation: RotationRow) => void;
  failed?: (rotation: RotationRow) => void;
  /** Commands published for the first time (after their rows were committed). */
  sent?: (commands: readonly Command[]) => void;
  /** An in-flight step sent again after its time-out or back-off, or at once when its offline device is back. */
  resent?: (row: StepRow) => void;
  /** A step due while its device is offline is held: no attempt counted, resent when the device is back (presence-gate.ts). */
  held?: (row: StepRow) => void;
  /** A device answered a step with an error (counted against the step). */
  ackError?: (row: StepRow, code: string, message: string) => void;
  /** The rotation's status changed (started, paused, resumed, aborted, complete, failed). */
  status?: (rotation: RotationRow, reason: string | null) => void;
  /** A device was excluded from the rotation. */
  excluded?: (rotationId: string, deviceId: string, steps: readonly string[]) => void;
  /** A signed acknowledgement for a rotation id this orchestrator does not run (a catch-up's). */
  foreignAck?: (ack: Ack) => void;
  /** An acknowledgement whose device signature does not verify (forged or altered, e.g. by a relay); dropped. */
  forgedAck?: (ack: Ack) => void;
}

/** How an orchestrator is wired. */
export interface OrchestratorOptions {
  db: FleetDb;
  transport: ManagerTransport;
  authority: RotationAuthority;
  clock: Clock;
  timers: Timers;
  logger: Logger;
  policy?: Partial<RotationPolicy>;
  schedules?: Readonly<Record<string, Schedule>>;
  /** Adds the manager's signature to a command (management channel security). */
  sign?: (cmd: Command) => Command;
  /** Accepts only acknowledgements signed by the device (see ../transport/ack-verifier.ts); absent = not required. */
  verifyAck?: (ack: Ack) => boolean;
  /** Which devices are offline (presence-gate.ts); absent = every device counts as online. */
  presence?: PresenceSource;
  events?: OrchestratorEvents;
}

/** The loaded rotation and the status changes the orchestrator's parts share. */
export class OrchestratorContext {
  readonly policy: RotationPolicy;
  /** In-memory indexes over the loaded rotation's step rows (its current phase). */
  state: RotationState | null = null;
  /** The running or last rotation's row. */
  rotation: RotationRow | null = null;
  /** OldWithNew this rotation hands its devices with the old-root clean-up (start option), if any. */
  pushedOldWithNew: string | undefined = undefined;
  /** The sweep's timer (armed by orchestrator-sweep.ts). */
  sweepTimer: unknown = null;
  /** Closed: nothing more is written (close()). */
  closed = false;

  constructor(readonly o: OrchestratorOptions) {
    this.policy = { ...DEFAULT_POLICY, ...o.policy };
  }

  get schedules(): Readonly<Record<string, Schedule>> {
    return this.o.schedules ?? SCHEDULES;
  }

  /** True while steps may be sent (running forward, or rolling back). */
  sending(): boolean {
    return this.rotation?.status === 'running' || this.rotation?.status === 'rolling-back';
  }

  disarmSweep(): void {
    if (this.sweepTimer !== null) this.o.timers.clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** The loaded rotation, or E_ROTATION_UNKNOWN / E_ROTATION_STATE unless its status is one of `allowed`. */
  requireOpen(allowed: readonly RotationRow['status'][]): RotationRow {
    const rot = this.rotation;
    if (!rot) throw new ManagerError('E_ROTATION_UNKNOWN', 'no rotation is loaded; start one or resume an open one');
    if (!allowed.includes(rot.status)) {
      throw new ManagerError('E_ROTATION_STATE', `rotation ${rot.id} is ${rot.status}; this needs it to be ${allowed.join(' or ')}`);
    }
    return rot;
  }

  /** An operator's pause or abort. */
  setStatus(rot: RotationRow, status: RotationRow['status'], reason: string): void {
    rot.status = status;
    rot.error = status === 'failed' || status === 'aborted' ? reason : null;
    this.disarmSweep();
    this.o.db.setRotationStatus(rot.id, status, this.o.clock.now().toISOString(), rot.error);
    this.rotation = this.o.db.rotation(rot.id);
    this.o.logger.warn(`rotation ${status}`, { rotationId: rot.id, reason });
    this.o.events?.status?.(this.rotation!, reason);
  }

  /** Count a failed attempt of `row` (device error or time-out): retry after back-off, or stop the rotation after maxAttempts. */
  failAttempt(row: StepRow, code: string, message: string, now: Date): void {
    if (row.attempts >= this.policy.maxAttempts) {
      Object.assign(row, { status: 'failed', errorCode: code, errorMessage: message, dueAt: null });
      this.o.db.updateStep(row);
      this.stop(`device ${row.deviceId} step ${row.step} failed ${row.attempts} times (${code}: ${message})`);
      return;
    }
    const backoff = Math.min(this.policy.backoffBaseMs * 2 ** (row.attempts - 1), this.policy.backoffMaxMs);
    Object.assign(row, { errorCode: code, errorMessage: message, dueAt: now.getTime() + backoff });
    this.o.db.updateStep(row);
  }

  /** Stop the rotation where it is: every device still authenticates; `resume` continues once the cause is fixed. */
  private stop(reason: string): void {
    const rot = this.rotation!;
    rot.status = 'failed';
    rot.error = reason;
    this.o.db.setRotationStatus(rot.id, 'failed', this.o.clock.now().toISOString(), reason);
    this.disarmSweep();
    this.o.logger.error('rotation stopped; every device still authenticates, resume after fixing the cause', { rotationId: rot.id, reason });
    this.o.events?.status?.(rot, reason);
    this.o.events?.failed?.(rot);
  }
}
