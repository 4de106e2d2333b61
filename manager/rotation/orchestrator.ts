/**
 * manager/rotation/: a rotation of the fleet's root (or a renewal of its
 * certificates) from its start to its end. This file is the room's front:
 * the orchestrator that decides *when*. The CA decides *how*, behind the
 * narrow RotationAuthority interface (authority.ts). Around it: what a
 * rotation is made of (orchestrator-start.ts, renewal-plan.ts,
 * algorithm-plan.ts, commands.ts), the checks anyone may ask
 * (rotation-guards.ts, payload-gate.ts, phase.ts), who waits for whom
 * (waits.ts, shown by rotation-status.ts and the service's views), and one
 * rotation run from the command line (run-rotation.ts).
 *
 * The orchestrator sends each device its next step only once every
 * prerequisite is acknowledged by the device and by every peer
 * (protocol/schedule.ts decides legality), keeps one step in flight per
 * device, retries with back-off, stops the rotation where it is after too
 * many failures of a device that is online (a step of an offline device is
 * held and sent again when it is back: presence-gate.ts), and resumes from
 * SQLite after a restart without re-sending acknowledged steps. Its parts,
 * by what they do: starting and refusing (orchestrator-start.ts), sending
 * (orchestrator-send.ts), applying acknowledgements (orchestrator-acks.ts),
 * sweeping (orchestrator-sweep.ts), and what they share
 * (orchestrator-context.ts).
 */
import type { Role, Schedule } from '../../protocol/steps.ts';
import { RENEW, ROLLBACK_OF } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { RotationRow, StepRow } from '../fleet/fleet-db.ts';
import { buildPeers } from '../fleet/peering.ts';
import { AckIntake } from './orchestrator-acks.ts';
import { OrchestratorContext, type OrchestratorOptions } from './orchestrator-context.ts';
import { Sender } from './orchestrator-send.ts';
import { planStart, type StartOptions } from './orchestrator-start.ts';
import { Sweeper } from './orchestrator-sweep.ts';
import { phaseRows, phaseSchedule, rollbackBlocker } from './phase.ts';
import { unheld } from './presence-gate.ts';
import { planRenewal } from './renewal-plan.ts';
import { openRotation, refuseWhileOpen } from './rotation-guards.ts';
import type { RotationPolicy } from './rotation-policy.ts';
import { RotationState } from './rotation-state.ts';
import { rotationStatus } from './rotation-status.ts';

export type { OrchestratorEvents, OrchestratorOptions } from './orchestrator-context.ts';
export type { StartOptions } from './orchestrator-start.ts';
export { DEFAULT_POLICY, type RotationPolicy } from './rotation-policy.ts';
export { assertRootSide, openRotation } from './rotation-guards.ts';

/** Drives one rotation at a time through its schedule. */
export class Orchestrator {
  readonly policy: RotationPolicy;
  private readonly c: OrchestratorContext;
  private readonly sender: Sender;
  private readonly sweeper: Sweeper;
  private readonly acks: AckIntake;

  constructor(o: OrchestratorOptions) {
    this.c = new OrchestratorContext(o);
    this.policy = this.c.policy;
    this.sender = new Sender(this.c);
    this.sweeper = new Sweeper(this.c);
    this.acks = new AckIntake(this.c, this.sender);
    o.transport.onAck((raw) => this.acks.onAck(raw));
    o.presence?.onOnline((deviceId) => this.sweeper.onDeviceOnline(deviceId));
  }

  /**
   * Step S and start: the checks and the CA's material (orchestrator-start.ts),
   * then the rotation is recorded and its first steps dispatched.
   */
  async start(opts: StartOptions): Promise<string> {
    const o = this.c.o;
    const p = await planStart(o, opts);
    o.db.insertRotation(p.row, p.leaves, p.steps, { oldWithNew: p.oldWithNew, pushOldWithNew: !!opts.distributeOldWithNew });
    opts.onCreated?.(p.id);
    o.logger.info('rotation started', { rotationId: p.id, schedule: p.row.schedule, devices: p.devices, unsafe: p.row.unsafe, algorithm: p.algorithm, root: p.side ?? 'fleet' });
    this.load(p.id, opts.schedule);
    o.events?.status?.(this.c.rotation!, 'started');
    this.sender.pump();
    return p.id;
  }

  /**
   * Renew the certificates of `deviceIds` under the active root (schedule
   * `renew`: one step per device, no prerequisites, since every peer already
   * trusts that root). The CA makes no new root: the rotation row's D and R1
   * columns hold the active root, and finishing it records each device's
   * new certificate without activating anything. Refused while a rotation
   * is open, for an unknown device, and when a new certificate could not
   * outlive the current one (the root expires first: rotate the root). In
   * a fleet with separate roots each device's certificate is renewed under
   * the root of its side (the one that signs it).
   */
  async startRenewal(opts: { deviceIds: readonly string[]; rotationId?: string; onCreated?: (rotationId: string) => void }): Promise<string> {
    const o = this.c.o;
    refuseWhileOpen(o.db);
    const { id, row, leaves, steps } = planRenewal(o.db, o.authority, o.clock.now(), opts.deviceIds, opts.rotationId);
    o.db.insertRotation(row, leaves, steps);
    opts.onCreated?.(id);
    o.logger.info('renewal started', { rotationId: id, schedule: RENEW.name, devices: steps.length });
    this.load(id, RENEW);
    o.events?.status?.(this.c.rotation!, 'started');
    this.sender.pump();
    return id;
  }

  /**
   * Pick up a rotation after a manager restart, or after a failure once its
   * cause is fixed: steps in flight are resent with their original sequence
   * number (devices answer redeliveries from their stored result).
   */
  resume(rotationId?: string, schedule?: Schedule): void {
    const o = this.c.o;
    const row = rotationId ? o.db.rotation(rotationId) : openRotation(o.db);
    if (!row) throw new ManagerError('E_ROTATION_UNKNOWN', rotationId ? `no rotation ${rotationId} in this manager database` : 'no open rotation to resume; start one ("trustroll rotate")');
    if (row.status === 'complete' || row.status === 'rolled-back') return;
    const phase = this.phaseOf(row);
    const sched = schedule ?? phase;
    const now = o.clock.now();
    o.db.setRotationStatus(row.id, phase.name === row.schedule ? 'running' : 'rolling-back', now.toISOString());
    this.load(row.id, sched);
    o.db.tx(() => {
      for (const r of this.c.state!.inFlight()) {
        Object.assign(r, { status: 'sent', attempts: r.status === 'failed' ? 0 : r.attempts, dueAt: now.getTime() });
        o.db.updateStep(r);
      }
    });
    o.logger.info('rotation resumed', { rotationId: row.id, was: row.status });
    o.events?.status?.(this.c.rotation!, `resumed (was ${row.status})`);
    this.sweeper.sweep();
    this.sender.pump();
  }

  /**
   * Hold the rotation where it is: nothing new is sent and nothing is
   * resent; acknowledgements of steps already in flight are still
   * recorded. `resume` continues.
   */
  pause(reason = 'paused by an operator'): RotationRow {
    const rot = this.c.requireOpen(['running', 'rolling-back']);
    this.c.setStatus(rot, 'paused', reason);
    return rot;
  }

  /**
   * Stop sending: every device stays where it is (every intermediate state
   * authenticates). The rotation stays open and can be resumed; until it
   * completes no other rotation can start.
   */
  abort(reason = 'aborted by an operator'): RotationRow {
    const rot = this.c.requireOpen(['running', 'paused', 'failed', 'rolling-back']);
    this.c.setStatus(rot, 'aborted', reason);
    return rot;
  }

  /**
   * Abort by returning every device to exactly its state before the
   * rotation, through the forward schedule's rollback schedule (clients
   * drop Cn before servers drop D), ordered and acknowledged like any step.
   * Refused with E_ROLLBACK_IMPOSSIBLE once a server may hold its new
   * certificate or a device may have dropped the old root (then `abort`
   * stops where it is).
   */
  rollback(reason = 'rolled back by an operator'): RotationRow {
    const o = this.c.o;
    const rot = this.c.requireOpen(['running', 'paused', 'failed', 'aborted']);
    const rows = o.db.steps(rot.id);
    const blocked = rollbackBlocker(rot, rows);
    if (blocked) throw new ManagerError('E_ROLLBACK_IMPOSSIBLE', blocked);
    const forward = this.c.schedules[rot.schedule]!;
    const back = ROLLBACK_OF[forward.name]!;
    if (this.c.state?.schedule !== forward || this.c.rotation?.id !== rot.id) this.load(rot.id, forward);
    const st = this.c.state!;
    const now = o.clock.now().toISOString();
    o.db.tx(() => {
      const fresh = [...st.roles].flatMap(([deviceId, role]) => back.steps.filter((s) => s.role === role)
        .map((s) => ({ deviceId, step: s.id, status: st.excluded.has(deviceId) ? 'excluded' as const : 'pending' as const })));
      // Forward steps in flight stop being resent: the rollback commands carry newer sequence numbers.
      for (const r of st.inFlight()) {
        Object.assign(r, { dueAt: null, ...unheld(r) });
        o.db.updateStep(r);
      }
      if (!phaseRows(rows, back).length) o.db.insertSteps(rot.id, fresh);
      o.db.setRotationStatus(rot.id, 'rolling-back', now);
    });
    this.load(rot.id, back);
    o.logger.warn('rotation rolling back: every device returns to its state before the rotation', { rotationId: rot.id, reason });
    o.events?.status?.(this.c.rotation!, `rollback-started: ${reason}`);
    this.sender.pump();
    return this.c.rotation!;
  }

  /** The schedule driving `row` now: its rollback once rollback rows exist, else its forward schedule. */
  private phaseOf(row: RotationRow): Schedule {
    return phaseSchedule(row, this.c.o.db.steps(row.id), this.c.schedules);
  }

  /**
   * Take a device out of the current rotation: its unacknowledged steps
   * become `excluded`, nothing more is sent to it, and its peers stop
   * waiting for it. The device keeps whatever it already applied; it is
   * reported until it is brought forward (see the lifecycle docs).
   */
  exclude(deviceId: string): string[] {
    const o = this.c.o;
    const st = this.c.state;
    const rot = this.c.requireOpen(['running', 'paused', 'failed', 'aborted', 'rolling-back']);
    if (!st || !st.roles.has(deviceId)) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${deviceId} is not part of rotation ${rot.id}`);
    const rows = st.sequence[st.roles.get(deviceId)!].map((step) => st.row(deviceId, step)!).filter((r) => r.status !== 'acked' && r.status !== 'excluded');
    if (rows.length === 0) throw new ManagerError('E_DEVICE_DONE', `device ${deviceId} has already acknowledged every step of rotation ${rot.id}`);
    o.db.tx(() => {
      for (const r of rows) {
        Object.assign(r, { status: 'excluded', dueAt: null, ...unheld(r) });
        o.db.updateStep(r);
      }
    });
    for (const r of rows) st.noteExcluded(r);
    const steps = rows.map((r) => r.step);
    o.logger.warn('device excluded from the rotation; its peers no longer wait for it', { deviceId, rotationId: rot.id, steps });
    o.events?.excluded?.(rot.id, deviceId, steps);
    if (this.c.sending()) this.sender.pump(st.peersOf(deviceId).length > 0 ? st.peersOf(deviceId) : undefined);
    return steps;
  }

  /**
   * Load a rotation without changing its status or sending anything (a
   * restarted service showing a paused or aborted rotation, so that it can
   * be resumed, aborted or have a device excluded).
   */
  attach(rotationId: string): RotationRow {
    const row = this.c.o.db.rotation(rotationId);
    if (!row) throw new ManagerError('E_ROTATION_UNKNOWN', `no rotation ${rotationId} in this manager database`);
    this.load(row.id, this.phaseOf(row));
    return this.c.rotation!;
  }

  private load(id: string, schedule: Schedule): void {
    const db = this.c.o.db;
    const roles = new Map<string, Role>(db.devices().map((d) => [d.id, d.role]));
    const rows = phaseRows(db.steps(id), schedule);
    const covered = new Set(rows.map((r) => r.deviceId));
    for (const d of [...roles.keys()]) if (!covered.has(d)) roles.delete(d);
    this.c.rotation = db.rotation(id);
    this.c.pushedOldWithNew = db.rotationPushedOldWithNew(id) ?? undefined;
    const edges = db.peering();
    this.c.state = new RotationState(schedule, rows, roles, buildPeers(roles, edges), edges.length === 0);
    this.sweeper.arm();
  }

  /** The running or last rotation's row. */
  current(): RotationRow | null {
    return this.c.rotation;
  }

  /** Per device: step statuses and, for the next step, who it waits for (from the database; see rotation-status.ts). */
  progress(): { deviceId: string; role: Role; steps: Record<string, StepRow['status']>; waitingFor: string[] }[] {
    if (!this.c.rotation) return [];
    return rotationStatus(this.c.o.db, this.c.rotation.id, { honourPreferred: this.policy.honourPreferred }).devices.map((d) => ({
      deviceId: d.deviceId, role: d.role, steps: Object.fromEntries(d.steps.map((x) => [x.step, x.status as StepRow['status']])), waitingFor: d.waitingFor,
    }));
  }

  /** Stop timers; state stays in SQLite for `resume`. */
  close(): void {
    // Acknowledgements still queued are dropped, not written to a database the owner is about to close:
    // the next resume resends those steps and the devices answer from their stored results.
    this.c.closed = true;
    this.acks.clear();
    this.c.disarmSweep();
  }
}
