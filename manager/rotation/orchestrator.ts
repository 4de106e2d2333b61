/**
 * The orchestrator decides *when*: it sends each device its next step only
 * once every prerequisite is acknowledged by the device and by every peer
 * (protocol/schedule.ts decides legality), keeps one step in flight per
 * device, retries with back-off, stops the rotation where it is after too
 * many failures of a device that is online (a step of an offline device is
 * held and sent again when it is back: presence-gate.ts), and resumes from
 * SQLite after a restart without re-sending acknowledged steps. The CA
 * (RotationAuthority) decides *how*.
 */
import { randomUUID } from 'node:crypto';
import type { Clock, Timers } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import { assertAck, type Ack } from '../../protocol/messages/ack.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { isReady, validateSchedule } from '../../protocol/schedule.ts';
import { RENEW, ROLLBACK_OF, SCHEDULES, type Role, type Schedule } from '../../protocol/steps.ts';
import { changesRoot, phaseRows, phaseSchedule, rollbackBlocker } from './phase.ts';
import { parseWire } from '../../protocol/validate.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import type { NewRootChoice, RotationAuthority } from './authority.ts';
import { assertVerifiable, planNewRoot } from './algorithm-plan.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb, RotationRow, StepRow } from '../fleet/fleet-db.ts';
import { buildPeers } from '../fleet/peering.ts';
import { RotationState } from './rotation-state.ts';
import type { ManagerTransport } from '../transport/transport.ts';
import { buildCommand } from './commands.ts';
import { assertPayloadAccepted } from './payload-gate.ts';
import { rotationStatus } from './rotation-status.ts';
import { DEFAULT_POLICY, type RotationPolicy } from './rotation-policy.ts';
import { dueAction, heldFields, isHeld, unheld, type PresenceSource } from './presence-gate.ts';
import { assertRootSide, openRotation, refuseWhileOpen } from './rotation-guards.ts';
import { planRenewal } from './renewal-plan.ts';

export { DEFAULT_POLICY, type RotationPolicy } from './rotation-policy.ts';
export { assertRootSide, openRotation } from './rotation-guards.ts';

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
  /** Accepts only acknowledgements signed by the device (see ack-verifier.ts); absent = not required. */
  verifyAck?: (ack: Ack) => boolean;
  /** Which devices are offline (presence-gate.ts); absent = every device counts as online. */
  presence?: PresenceSource;
  events?: OrchestratorEvents;
}

/** Drives one rotation at a time through its schedule. */
export class Orchestrator {
  readonly policy: RotationPolicy;
  private state: RotationState | null = null;
  private rotation: RotationRow | null = null;
  /** OldWithNew this rotation hands its devices with the old-root clean-up (start option), if any. */
  private pushedOldWithNew: string | undefined = undefined;
  private sweepTimer: unknown = null;
  private readonly inbox: (Buffer | string | object)[] = [];
  private closed = false;

  constructor(private readonly o: OrchestratorOptions) {
    this.policy = { ...DEFAULT_POLICY, ...o.policy };
    o.transport.onAck((raw) => this.onAck(raw));
    o.presence?.onOnline((deviceId) => this.onDeviceOnline(deviceId));
  }

  private get schedules(): Readonly<Record<string, Schedule>> {
    return this.o.schedules ?? SCHEDULES;
  }

  /**
   * Step S and start: validate the schedule, check that every device that
   * declared its algorithms can verify the new root (E_ALGORITHM_UNVERIFIABLE),
   * have the CA make the material (`newRoot`: algorithm and subject, each
   * default the active root's), persist, dispatch.
   */
  async start(opts: { schedule: Schedule; rotationId?: string; unsafe?: boolean; newRoot?: NewRootChoice; distributeOldWithNew?: boolean; onCreated?: (rotationId: string) => void }): Promise<string> {
    refuseWhileOpen(this.o.db);
    const side = opts.schedule.root;
    assertRootSide(this.o.authority, opts.schedule);
    const plan = planNewRoot(this.o.db, this.o.authority.activeRoot(side).cert, opts.newRoot);
    assertVerifiable(plan);
    for (const w of plan.warnings) this.o.logger.warn('new root algorithm', { warning: w, from: plan.from, to: plan.to });
    if (!opts.unsafe) {
      const report = validateSchedule(opts.schedule);
      for (const w of report.warnings) this.o.logger.warn('schedule warning', { warning: w });
    }
    const devices = this.o.db.devices();
    if (!devices.some((d) => d.role === 'server') || !devices.some((d) => d.role === 'client')) {
      throw new ManagerError('E_FLEET_EMPTY', `fleet has ${devices.length} devices; need at least one server and one client`);
    }
    if (opts.distributeOldWithNew) assertPayloadAccepted(this.o.db, devices, opts.schedule, 'oldWithNew', this.o.logger, 'OldWithNew');
    const id = opts.rotationId ?? `rot-${this.o.clock.now().toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`;
    const now = this.o.clock.now();
    // One side's root rotated: only the devices it signs get new certificates; the other side's never change.
    const subjects = side ? devices.filter((d) => d.role === side) : devices;
    const material = await this.o.authority.prepare({ rotationId: id, subjects, now, newRoot: { algorithm: plan.to, subject: opts.newRoot?.subject }, ...(side ? { side } : {}) });
    const steps = devices.flatMap((d) => opts.schedule.steps.filter((s) => s.role === d.role).map((s) => ({ deviceId: d.id, step: s.id })));
    const row: RotationRow = {
      id, schedule: opts.schedule.name, status: 'running', unsafe: !!opts.unsafe, distribution: material.distribution,
      newRoot: material.newRoot, createdAt: now.toISOString(), updatedAt: now.toISOString(), error: null,
    };
    if (opts.distributeOldWithNew && !material.oldWithNew) {
      throw new ManagerError('E_SERVICE_CONFIG', 'the CA made no OldWithNew for this rotation (an external CA), so none can be distributed; start it without distributing OldWithNew');
    }
    this.o.db.insertRotation(row, material.leaves, steps, { oldWithNew: material.oldWithNew, pushOldWithNew: !!opts.distributeOldWithNew });
    opts.onCreated?.(id);
    this.o.logger.info('rotation started', { rotationId: id, schedule: row.schedule, devices: devices.length, unsafe: row.unsafe, algorithm: plan.to, root: side ?? 'fleet' });
    this.load(id, opts.schedule);
    this.o.events?.status?.(this.rotation!, 'started');
    this.pump();
    return id;
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
    refuseWhileOpen(this.o.db);
    const { id, row, leaves, steps } = planRenewal(this.o.db, this.o.authority, this.o.clock.now(), opts.deviceIds, opts.rotationId);
    this.o.db.insertRotation(row, leaves, steps);
    opts.onCreated?.(id);
    this.o.logger.info('renewal started', { rotationId: id, schedule: RENEW.name, devices: steps.length });
    this.load(id, RENEW);
    this.o.events?.status?.(this.rotation!, 'started');
    this.pump();
    return id;
  }

  /**
   * Pick up a rotation after a manager restart, or after a failure once its
   * cause is fixed: steps in flight are resent with their original sequence
   * number (devices answer redeliveries from their stored result).
   */
  resume(rotationId?: string, schedule?: Schedule): void {
    const row = rotationId ? this.o.db.rotation(rotationId) : openRotation(this.o.db);
    if (!row) throw new ManagerError('E_ROTATION_UNKNOWN', rotationId ? `no rotation ${rotationId} in this manager database` : 'no open rotation to resume; start one ("trustroll rotate")');
    if (row.status === 'complete' || row.status === 'rolled-back') return;
    const phase = this.phaseOf(row);
    const sched = schedule ?? phase;
    const now = this.o.clock.now();
    this.o.db.setRotationStatus(row.id, phase.name === row.schedule ? 'running' : 'rolling-back', now.toISOString());
    this.load(row.id, sched);
    this.o.db.tx(() => {
      for (const r of this.state!.inFlight()) {
        Object.assign(r, { status: 'sent', attempts: r.status === 'failed' ? 0 : r.attempts, dueAt: now.getTime() });
        this.o.db.updateStep(r);
      }
    });
    this.o.logger.info('rotation resumed', { rotationId: row.id, was: row.status });
    this.o.events?.status?.(this.rotation!, `resumed (was ${row.status})`);
    this.sweep();
    this.pump();
  }

  /**
   * Hold the rotation where it is: nothing new is sent and nothing is
   * resent; acknowledgements of steps already in flight are still
   * recorded. `resume` continues.
   */
  pause(reason = 'paused by an operator'): RotationRow {
    const rot = this.requireOpen(['running', 'rolling-back']);
    this.setStatus(rot, 'paused', reason);
    return rot;
  }

  /**
   * Stop sending: every device stays where it is (every intermediate state
   * authenticates). The rotation stays open and can be resumed; until it
   * completes no other rotation can start.
   */
  abort(reason = 'aborted by an operator'): RotationRow {
    const rot = this.requireOpen(['running', 'paused', 'failed', 'rolling-back']);
    this.setStatus(rot, 'aborted', reason);
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
    const rot = this.requireOpen(['running', 'paused', 'failed', 'aborted']);
    const rows = this.o.db.steps(rot.id);
    const blocked = rollbackBlocker(rot, rows);
    if (blocked) throw new ManagerError('E_ROLLBACK_IMPOSSIBLE', blocked);
    const forward = this.schedules[rot.schedule]!;
    const back = ROLLBACK_OF[forward.name]!;
    if (this.state?.schedule !== forward || this.rotation?.id !== rot.id) this.load(rot.id, forward);
    const st = this.state!;
    const now = this.o.clock.now().toISOString();
    this.o.db.tx(() => {
      const fresh = [...st.roles].flatMap(([deviceId, role]) => back.steps.filter((s) => s.role === role)
        .map((s) => ({ deviceId, step: s.id, status: st.excluded.has(deviceId) ? 'excluded' as const : 'pending' as const })));
      // Forward steps in flight stop being resent: the rollback commands carry newer sequence numbers.
      for (const r of st.inFlight()) {
        Object.assign(r, { dueAt: null, ...unheld(r) });
        this.o.db.updateStep(r);
      }
      if (!phaseRows(rows, back).length) this.o.db.insertSteps(rot.id, fresh);
      this.o.db.setRotationStatus(rot.id, 'rolling-back', now);
    });
    this.load(rot.id, back);
    this.o.logger.warn('rotation rolling back: every device returns to its state before the rotation', { rotationId: rot.id, reason });
    this.o.events?.status?.(this.rotation!, `rollback-started: ${reason}`);
    this.pump();
    return this.rotation!;
  }

  /** The schedule driving `row` now: its rollback once rollback rows exist, else its forward schedule. */
  private phaseOf(row: RotationRow): Schedule {
    return phaseSchedule(row, this.o.db.steps(row.id), this.schedules);
  }

  /** True while steps may be sent (running forward, or rolling back). */
  private sending(): boolean {
    return this.rotation?.status === 'running' || this.rotation?.status === 'rolling-back';
  }

  /**
   * Take a device out of the current rotation: its unacknowledged steps
   * become `excluded`, nothing more is sent to it, and its peers stop
   * waiting for it. The device keeps whatever it already applied; it is
   * reported until it is brought forward (see the lifecycle docs).
   */
  exclude(deviceId: string): string[] {
    const st = this.state;
    const rot = this.requireOpen(['running', 'paused', 'failed', 'aborted', 'rolling-back']);
    if (!st || !st.roles.has(deviceId)) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${deviceId} is not part of rotation ${rot.id}`);
    const rows = st.sequence[st.roles.get(deviceId)!].map((step) => st.row(deviceId, step)!).filter((r) => r.status !== 'acked' && r.status !== 'excluded');
    if (rows.length === 0) throw new ManagerError('E_DEVICE_DONE', `device ${deviceId} has already acknowledged every step of rotation ${rot.id}`);
    this.o.db.tx(() => {
      for (const r of rows) {
        Object.assign(r, { status: 'excluded', dueAt: null, ...unheld(r) });
        this.o.db.updateStep(r);
      }
    });
    for (const r of rows) st.noteExcluded(r);
    const steps = rows.map((r) => r.step);
    this.o.logger.warn('device excluded from the rotation; its peers no longer wait for it', { deviceId, rotationId: rot.id, steps });
    this.o.events?.excluded?.(rot.id, deviceId, steps);
    if (this.sending()) this.pump(st.peersOf(deviceId).length > 0 ? st.peersOf(deviceId) : undefined);
    return steps;
  }

  private requireOpen(allowed: readonly RotationRow['status'][]): RotationRow {
    const rot = this.rotation;
    if (!rot) throw new ManagerError('E_ROTATION_UNKNOWN', 'no rotation is loaded; start one or resume an open one');
    if (!allowed.includes(rot.status)) {
      throw new ManagerError('E_ROTATION_STATE', `rotation ${rot.id} is ${rot.status}; this needs it to be ${allowed.join(' or ')}`);
    }
    return rot;
  }

  private setStatus(rot: RotationRow, status: RotationRow['status'], reason: string): void {
    rot.status = status;
    rot.error = status === 'failed' || status === 'aborted' ? reason : null;
    this.disarmSweep();
    this.o.db.setRotationStatus(rot.id, status, this.o.clock.now().toISOString(), rot.error);
    this.rotation = this.o.db.rotation(rot.id);
    this.o.logger.warn(`rotation ${status}`, { rotationId: rot.id, reason });
    this.o.events?.status?.(this.rotation!, reason);
  }

  /**
   * Load a rotation without changing its status or sending anything (a
   * restarted service showing a paused or aborted rotation, so that it can
   * be resumed, aborted or have a device excluded).
   */
  attach(rotationId: string): RotationRow {
    const row = this.o.db.rotation(rotationId);
    if (!row) throw new ManagerError('E_ROTATION_UNKNOWN', `no rotation ${rotationId} in this manager database`);
    this.load(row.id, this.phaseOf(row));
    return this.rotation!;
  }

  private load(id: string, schedule: Schedule): void {
    const roles = new Map<string, Role>(this.o.db.devices().map((d) => [d.id, d.role]));
    const rows = phaseRows(this.o.db.steps(id), schedule);
    const covered = new Set(rows.map((r) => r.deviceId));
    for (const d of [...roles.keys()]) if (!covered.has(d)) roles.delete(d);
    this.rotation = this.o.db.rotation(id);
    this.pushedOldWithNew = this.o.db.rotationPushedOldWithNew(id) ?? undefined;
    const edges = this.o.db.peering();
    this.state = new RotationState(schedule, rows, roles, buildPeers(roles, edges), edges.length === 0);
    this.armSweep();
  }

  /** Send every step whose prerequisites are all acknowledged (restricted to `candidates` if given). */
  private pump(candidates?: Iterable<string>): void {
    this.send(this.o.db.tx(() => this.prepareReady(candidates)));
  }

  /**
   * Inside the caller's transaction: build, sign and record as sent every
   * step whose prerequisites are all acknowledged. The commands go out only
   * after that transaction commits (`send`), so a command is never on the
   * wire before its sequence number is durable.
   */
  private prepareReady(candidates?: Iterable<string>): Command[] {
    const st = this.state;
    const rot = this.rotation;
    if (!st || !rot || !this.sending()) return [];
    const now = this.o.clock.now();
    const commands: Command[] = [];
    for (const deviceId of candidates ?? st.roles.keys()) {
      if (st.inFlightOf(deviceId)) continue;
      const row = st.nextStep(deviceId);
      if (!row || row.status !== 'pending') continue;
      const ok = isReady(st.schedule, row.step, (step) => st.isAcked(deviceId, step), (step) => st.allPeersAcked(deviceId, step), { honourPreferred: this.policy.honourPreferred });
      if (!ok) continue;
      let cmd = buildCommand(st.schedule, rot, row, this.o.db.allocateSeq(row.deviceId), this.o.db.leaf(rot.id, row.deviceId), now, this.pushedOldWithNew);
      if (this.o.sign) cmd = this.o.sign(cmd);
      Object.assign(row, { status: 'sent', seq: cmd.seq, attempts: 1, command: JSON.stringify(cmd), sentAt: now.toISOString(), dueAt: now.getTime() + this.policy.ackTimeoutMs });
      this.o.db.updateStep(row);
      st.noteInFlight(row);
      commands.push(cmd);
    }
    return commands;
  }

  /** Publish committed commands; finish the rotation once every step is acknowledged. */
  private send(commands: readonly Command[]): void {
    const st = this.state;
    const rot = this.rotation;
    if (!st || !rot) return;
    for (const cmd of commands) {
      this.o.logger.debug('step sent', { deviceId: cmd.deviceId, rotationId: cmd.rotationId, step: cmd.step, seq: cmd.seq });
      this.o.transport.send(cmd);
    }
    if (commands.length > 0) this.o.events?.sent?.(commands);
    if (this.sending() && st.complete()) {
      this.finish().catch((err: Error) => this.o.logger.error('rotation finished on every device but the CA could not activate the new root; run resume to retry', { rotationId: rot.id, reason: err.message }));
    }
  }

  private async finish(): Promise<void> {
    const rot = this.rotation!;
    if (rot.status === 'rolling-back') return this.finishRollback(rot);
    if (rot.status !== 'running') return;
    rot.status = 'complete';
    this.disarmSweep();
    // A renewal issued under the active root: there is no new root to activate.
    if (!rot.unsafe && changesRoot(rot)) await this.o.authority.activate(rot.id);
    const at = this.o.clock.now().toISOString();
    this.o.db.tx(() => {
      // An excluded device still presents its old certificate.
      for (const [deviceId, pem] of this.o.db.leaves(rot.id)) if (!this.state?.excluded.has(deviceId)) this.o.db.setDeviceCertificate(deviceId, pem, this.o.db.device(deviceId).spki);
      this.o.db.setRotationStatus(rot.id, 'complete', at);
    });
    this.rotation = this.o.db.rotation(rot.id);
    this.o.logger.info('rotation complete', { rotationId: rot.id });
    this.o.events?.status?.(this.rotation!, 'complete');
    this.o.events?.complete?.(this.rotation!);
  }

  /** Every device is back where it was: the rotation is closed; the CA never activates its new root. */
  private finishRollback(rot: RotationRow): void {
    rot.status = 'rolled-back';
    this.disarmSweep();
    this.o.db.setRotationStatus(rot.id, 'rolled-back', this.o.clock.now().toISOString());
    this.rotation = this.o.db.rotation(rot.id);
    this.o.logger.info('rotation rolled back: every device holds its old trust store and identity', { rotationId: rot.id });
    this.o.events?.status?.(this.rotation!, 'rolled-back');
    this.o.events?.complete?.(this.rotation!);
  }

  /**
   * Acknowledgements are queued and applied in batches: every ack that
   * arrived in one turn of the event loop is written, readiness re-checked
   * once, and the steps it unlocks recorded, all in one transaction (a
   * fleet of 10,000 acks in bursts).
   */
  private onAck(raw: Buffer | string | object): void {
    if (this.closed) return;
    this.inbox.push(raw);
    if (this.inbox.length === 1) setImmediate(() => this.flushAcks());
  }

  private flushAcks(): void {
    if (this.closed) return;
    const batch = this.inbox.splice(0);
    // One transaction (one fsync) records the batch and the steps it unlocks.
    const commands = this.o.db.tx(() => {
      const candidates = new Set<string>();
      for (const raw of batch) this.applyAck(raw, candidates);
      return candidates.size > 0 ? this.prepareReady(candidates) : [];
    });
    this.send(commands);
  }

  /** Apply one acknowledgement; invalid or stale ones are logged and dropped. Adds devices that may have become ready. */
  private applyAck(raw: Buffer | string | object, candidates: Set<string>): void {
    let ack: Ack;
    try {
      const parsed = typeof raw === 'object' && !Buffer.isBuffer(raw) ? raw : parseWire(raw, 'ack');
      assertAck(parsed);
      ack = parsed;
    } catch (err) {
      this.o.logger.warn('invalid acknowledgement dropped', { code: (err as ProtocolError).code, reason: (err as Error).message });
      return;
    }
    const st = this.state;
    const log = { deviceId: ack.deviceId, rotationId: ack.rotationId, step: ack.step, seq: ack.seq };
    if (this.o.verifyAck && !this.o.verifyAck(ack)) {
      this.o.logger.warn('acknowledgement without a valid device signature dropped', { ...log, code: 'E_ACK_SIGNATURE' });
      this.o.events?.forgedAck?.(ack);
      return;
    }
    if (this.rotation?.id !== ack.rotationId && this.o.events?.foreignAck) {
      this.o.events.foreignAck(ack);
      return;
    }
    const row = st && this.rotation?.id === ack.rotationId ? st.row(ack.deviceId, ack.step) : undefined;
    if (!st || !row || row.seq !== ack.seq || row.status === 'acked' || row.status === 'pending' || row.status === 'excluded') {
      this.o.logger.debug('stale or unknown acknowledgement ignored', log);
      return;
    }
    this.o.transport.accepted?.(ack.deviceId, ack.seq);
    const now = this.o.clock.now();
    if (ack.ok && ack.state.completed.includes(ack.step)) {
      Object.assign(row, { status: 'acked', ackedAt: now.toISOString(), dueAt: null, errorCode: null, errorMessage: null });
      this.o.db.updateStep(row);
      st.noteAcked(row.deviceId, row.step);
      this.o.logger.info('step acknowledged', { ...log, attempts: row.attempts });
      this.o.events?.acked?.(row, ack);
      candidates.add(row.deviceId);
      // Only peers for which this was the last missing acknowledgement can have become ready.
      for (const p of st.completedPeersBy(row.deviceId, row.step)) candidates.add(p);
      return;
    }
    const code = ack.error?.code ?? 'E_SCHEMA';
    const message = ack.error?.message ?? 'acknowledgement claims success but does not list the step as completed';
    this.o.logger.warn('step failed on device', { ...log, code, reason: message, attempts: row.attempts });
    this.o.events?.ackError?.(row, code, message);
    if (this.sending()) this.failAttempt(row, code, message, now);
  }

  private failAttempt(row: StepRow, code: string, message: string, now: Date): void {
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

  /**
   * Resend in-flight steps whose acknowledgement is overdue or whose retry
   * is due; hold those whose device is offline (no attempt counted) and
   * send held ones again once their device is back (presence-gate.ts).
   */
  private sweep(): void {
    const st = this.state;
    if (!st || !this.sending()) return;
    const now = this.o.clock.now();
    const resend: [StepRow, boolean][] = [];
    const hold: StepRow[] = [];
    for (const row of st.inFlight()) {
      const action = dueAction(row, now.getTime(), this.policy.maxAttempts, this.o.presence);
      if (action === 'wait') continue;
      if (action === 'hold') hold.push(row);
      else if (action === 'timeout') {
        this.failAttempt(row, 'E_ACK_TIMEOUT', `no acknowledgement after ${row.attempts} attempts of ${this.policy.ackTimeoutMs} ms; ${this.o.presence ? 'the device was online (connected to the broker) and did not answer: is its agent working?' : 'is the device online?'}`, now);
        if (!this.sending()) return;
      } else resend.push([row, action === 'resend']);
    }
    if (hold.length > 0) this.hold(hold, now);
    if (resend.length > 0) this.resend(resend, now);
  }

  /** Mark steps held for their offline devices: no attempt counted, nothing sent. */
  private hold(rows: readonly StepRow[], now: Date): void {
    this.o.db.tx(() => {
      for (const row of rows) {
        Object.assign(row, heldFields(row, now));
        this.o.db.updateStep(row);
      }
    });
    for (const row of rows) {
      this.o.logger.info('step held: device offline, no attempt counted; sent again when it is back', { deviceId: row.deviceId, rotationId: row.rotationId, step: row.step, seq: row.seq, attempts: row.attempts });
      this.o.events?.held?.(row);
    }
  }

  /** Send in-flight steps again with their original sequence number; `counted` ones spend an attempt. */
  private resend(rows: readonly (readonly [StepRow, boolean])[], now: Date): void {
    this.o.db.tx(() => {
      for (const [row, counted] of rows) {
        Object.assign(row, { attempts: row.attempts + (counted ? 1 : 0), dueAt: now.getTime() + this.policy.ackTimeoutMs, errorCode: null, errorMessage: null });
        this.o.db.updateStep(row);
      }
    });
    for (const [row, counted] of rows) {
      this.o.logger.info(counted ? 'step resent' : 'step resent: its device is back online', { deviceId: row.deviceId, rotationId: row.rotationId, step: row.step, seq: row.seq, attempts: row.attempts });
      this.o.transport.send(JSON.parse(row.command!) as Command);
      this.o.events?.resent?.(row);
    }
  }

  /** A device that was offline is back: the step held for it goes out again now (same seq), not at the next sweep. */
  private onDeviceOnline(deviceId: string): void {
    const row = this.state?.inFlightOf(deviceId);
    if (this.closed || !row || row.status !== 'sent' || !isHeld(row) || !this.sending()) return;
    try {
      this.resend([[row, false]], this.o.clock.now());
    } catch (err) {
      // The next sweep releases it (the row is still held and due).
      this.o.logger.error('held step not resent on the device\'s return; the next sweep retries', { deviceId, rotationId: row.rotationId, step: row.step, reason: (err as Error).message });
    }
  }

  private armSweep(): void {
    this.disarmSweep();
    const tick = () => {
      this.sweep();
      if (this.sending()) this.sweepTimer = this.o.timers.setTimeout(tick, this.policy.sweepIntervalMs);
    };
    this.sweepTimer = this.o.timers.setTimeout(tick, this.policy.sweepIntervalMs);
  }

  private disarmSweep(): void {
    if (this.sweepTimer !== null) this.o.timers.clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** The running or last rotation's row. */
  current(): RotationRow | null {
    return this.rotation;
  }

  /** Per device: step statuses and, for the next step, who it waits for (from the database; see rotation-status.ts). */
  progress(): { deviceId: string; role: Role; steps: Record<string, StepRow['status']>; waitingFor: string[] }[] {
    if (!this.rotation) return [];
    return rotationStatus(this.o.db, this.rotation.id, { honourPreferred: this.policy.honourPreferred }).devices.map((d) => ({
      deviceId: d.deviceId, role: d.role, steps: Object.fromEntries(d.steps.map((x) => [x.step, x.status as StepRow['status']])), waitingFor: d.waitingFor,
    }));
  }

  /** Stop timers; state stays in SQLite for `resume`. */
  close(): void {
    // Acknowledgements still queued are dropped, not written to a database the owner is about to close:
    // the next resume resends those steps and the devices answer from their stored results.
    this.closed = true;
    this.inbox.length = 0;
    this.disarmSweep();
  }
}
