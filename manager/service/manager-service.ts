/**
 * The long-running manager (`trustroll serve`): one MQTT session to the
 * broker, every device's retained state followed for presence, rotations
 * run, paused, aborted and resumed (a running rotation survives a restart
 * of the service), every operator action and every step event written to
 * the hash-chained audit log, and the views the HTTP API and the dashboard
 * read. Live changes are emitted as coalesced `live` events.
 */
import { changesRoot } from '../rotation/phase.ts';
import { EventEmitter } from 'node:events';
import { fingerprintPem } from '../../protocol/pem.ts';
import { systemClock, type Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import { ROLLBACK_OF, SCHEDULES, SIDE_SCHEDULES, type RootSide } from '../../protocol/steps.ts';
import { BrokerMonitor } from '../broker/broker-monitor.ts';
import { ManagerError } from '../errors.ts';
import { planNewRoot, type NewRootPlan } from '../rotation/algorithm-plan.ts';
import type { CaKeyAlgorithm } from '../ca/keys.ts';
import type { RotationRow, StepRow } from '../fleet/fleet-db.ts';
import type { AuditEntry, BrokerView, FleetPage, LiveEvent, RotationSummary, TrustSlot } from '../http/api-types.ts';
import { openManager, type Manager } from '../manager.ts';
import type { ManagementPki } from '../pki/management-pki.ts';
import { DEFAULT_POLICY, openRotation, type RotationPolicy } from '../rotation/orchestrator.ts';
import { CatchUps } from './catch-up.ts';
import type { Scheduler } from './scheduler.ts';
import { FleetView } from './fleet-view.ts';
import { Presence } from './presence.ts';
import { rotationSummary } from './rotation-view.ts';
import { ServiceDb } from './service-db.ts';
import type { AuditInput, AuditRow } from '../audit/audit-log.ts';

/** How the service is started. */
export interface ManagerServiceOptions {
  dataDir: string;
  pki: ManagementPki;
  brokerUrl: string;
  logger: Logger;
  clock?: Clock;
  policy?: Partial<RotationPolicy>;
  /** Live events are coalesced to one per this interval and kind (default 250 ms). */
  liveIntervalMs?: number;
  /** The broker's $SYS interval (Mosquitto sys_interval; default 10 000 ms). */
  brokerSysIntervalMs?: number;
  /** How often offline policies are applied (default 1 s). */
  policyIntervalMs?: number;
}

/** Events the service emits. */
export interface ServiceEvents {
  live: [LiveEvent];
  /** A step was acknowledged: seconds since it was (first) sent. */
  acked: [StepRow, number];
}

/** The manager as a service. */
export class ManagerService extends EventEmitter<ServiceEvents> {
  readonly sdb: ServiceDb;
  readonly presence: Presence;
  readonly fleet: FleetView;
  readonly broker: BrokerMonitor;
  readonly catchUps: CatchUps;
  /** Scheduled rotation and renewal, when `trustroll serve` runs one (run-service.ts). */
  scheduler: Scheduler | null = null;
  private readonly policyTimer: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly clock: Clock;
  private changedDevices = new Set<string>();
  private liveTimer: NodeJS.Timeout | null = null;
  private rotationDirty = false;
  private closed = false;

  private constructor(readonly m: Manager, readonly o: ManagerServiceOptions) {
    super();
    this.setMaxListeners(0);
    this.log = o.logger.child({ component: 'manager-service' });
    this.clock = o.clock ?? systemClock;
    this.sdb = new ServiceDb(m.db);
    this.presence = new Presence(this.sdb, this.clock, (ids) => this.noteFleetChange(ids));
    this.fleet = new FleetView(m.db, this.presence, this.clock, () => this.rootLabels());
    m.transport.on('state', (s: DeviceState) => {
      this.presence.note(s);
      this.catchUps.consider(s);
    });
    const policy = { ...DEFAULT_POLICY, ...o.policy };
    this.catchUps = new CatchUps({
      m, pki: o.pki, clock: this.clock, logger: o.logger, audit: (e) => this.audit(e),
      ackTimeoutMs: policy.ackTimeoutMs, maxAttempts: policy.maxAttempts, onChange: (id) => this.changed([id]),
    });
    this.policyTimer = setInterval(() => this.applyOfflinePolicy(), o.policyIntervalMs ?? 1000).unref();
    this.broker = new BrokerMonitor(m.transport, { intervalMs: o.brokerSysIntervalMs, clock: this.clock, logger: o.logger });
    this.broker.on('sample', (sample) => this.emitLive({ type: 'broker', sample, stale: false }));
    this.broker.on('stale', (stale) => { const sample = this.broker.latest(); if (sample) this.emitLive({ type: 'broker', sample, stale }); });
  }

  /** The broker view of the API. */
  brokerView(): BrokerView {
    const t = this.m.transport.stats;
    return {
      url: this.o.brokerUrl, connected: this.m.transport.connected, latest: this.broker.latest(), history: [...this.broker.history()],
      stale: this.broker.stale, note: this.broker.staleReason,
      transport: { connects: t.connects, disconnects: t.disconnects, commandsPublished: t.commandsPublished, republished: t.republished, acksReceived: t.acksReceived, acksDropped: t.acksDropped, statesReceived: t.statesReceived },
    };
  }

  /**
   * Open the data folder, connect to the broker and pick up where the last
   * run stopped: a running rotation is resumed (before the session's backlog
   * of acknowledgements is handled), a paused or aborted one is loaded as is.
   */
  static async start(o: ManagerServiceOptions): Promise<ManagerService> {
    let service!: ManagerService;
    const m = await openManager({
      dataDir: o.dataDir, pki: o.pki, brokerUrl: o.brokerUrl, logger: o.logger, clock: o.clock, policy: o.policy,
      events: {
        acked: (row) => service.onAcked(row),
        sent: (cmds) => service.changed(cmds.map((c) => c.deviceId)),
        // Resends and error acks are counted from the audit log (metrics); here they only refresh the views.
        resent: (row) => service.changed([row.deviceId]),
        held: (row) => service.changed([row.deviceId]),
        ackError: (row) => service.changed([row.deviceId]),
        status: (rot) => service.onStatus(rot),
        excluded: (_rotationId, deviceId) => service.changed([deviceId]),
        foreignAck: (ack) => { if (!service.catchUps.onAck(ack)) service.log.debug('acknowledgement for no known rotation or catch-up ignored', { deviceId: ack.deviceId, rotationId: ack.rotationId, step: ack.step }); },
      },
      onAudit: (row) => service?.onAudit(row),
    });
    service = new ManagerService(m, o);
    try {
      const open = openRotation(m.db);
      if (open?.status === 'running') m.orchestrator.resume(open.id);
      else if (open) m.orchestrator.attach(open.id);
      service.audit({ actor: 'manager', action: 'service.start', rotationId: open?.id ?? null, detail: { broker: o.brokerUrl, rotation: open ? open.status : null } });
      await m.transport.ready(30_000).catch((err: Error) => {
        // Keep serving the dashboard: the transport reconnects by itself and the rotation waits.
        service.log.error('broker not reachable yet; the service keeps retrying', { code: (err as ManagerError).code, reason: err.message });
      });
    } catch (err) {
      await m.close();
      throw err;
    }
    return service;
  }

  /** Append to the audit log and publish it live. */
  audit(e: AuditInput): AuditRow {
    const row = this.m.audit.append(e, this.clock.now());
    this.onAudit(row);
    return row;
  }

  private onAudit(row: AuditRow): void {
    // Per-step traffic is too dense to stream; the audit page reads it.
    if (!ROUTINE.has(row.action)) this.emitLive({ type: 'audit', entry: toEntry(row) });
  }

  // --- operator actions (each recorded with who made it) ---

  /**
   * Start a rotation with a named schedule. `excludeOfflineAfterS`: a device
   * offline (or never seen) longer than this is excluded and its peers go on
   * (default: the rotation waits for it and names it). `algorithm` and
   * `subject` choose the new root (default: the active root's); a root some
   * device declared it cannot verify is refused (E_ALGORITHM_UNVERIFIABLE),
   * and a move between RSA and ECDSA comes back in `warnings` and the audit.
   * `distributeOldWithNew`: devices keep OldWithNew when they drop R0 (see
   * docs/lifecycle.md, "OldWithNew").
   */
  async startRotation(scheduleName: string, actor: string, opts: { excludeOfflineAfterS?: number | null; algorithm?: CaKeyAlgorithm; subject?: string; root?: RootSide; distributeOldWithNew?: boolean } = {}): Promise<RotationSummary> {
    // Only forward schedules with a rollback start rotations (not naive, not a rollback or catch-up schedule);
    // in a separate-roots fleet, one root's own schedule: named (client-root, server-root) or picked by `root`.
    const named = SCHEDULES[scheduleName]?.root;
    if (named && opts.root && opts.root !== named) throw new ManagerError('E_BAD_REQUEST', `schedule ${scheduleName} rotates the ${named} root, not the ${opts.root} root; give one of them`);
    const side = opts.root ?? named;
    if (side && !opts.root) opts = { ...opts, root: side };
    const schedule = side ? SIDE_SCHEDULES[side] : ROLLBACK_OF[scheduleName] ? SCHEDULES[scheduleName] : undefined;
    if (!schedule) throw new ManagerError('E_BAD_REQUEST', `schedule ${JSON.stringify(scheduleName)} cannot start a rotation; use ${Object.keys(ROLLBACK_OF).join(' or ')}`);
    const newRoot = { algorithm: opts.algorithm, subject: opts.subject };
    let id: string;
    let plan: NewRootPlan | undefined;
    try {
      plan = planNewRoot(this.m.db, this.m.ca.activeRoot(opts.root).cert, newRoot);
      id = await this.m.orchestrator.start({
        schedule, newRoot, distributeOldWithNew: opts.distributeOldWithNew, onCreated: (rotationId) => {
          this.sdb.setExcludeOfflineAfter(rotationId, opts.excludeOfflineAfterS ?? null);
          this.audit({
            actor, action: 'operator.start', rotationId, detail: {
              schedule: schedule.name, ...(opts.root ? { root: opts.root } : {}), offlinePolicy: opts.excludeOfflineAfterS ? `exclude after ${opts.excludeOfflineAfterS} s` : 'wait',
              algorithm: plan!.to, ...(plan!.from !== plan!.to ? { algorithmFrom: plan!.from } : {}), ...(opts.subject ? { subject: opts.subject } : {}),
              ...(plan!.warnings.length ? { warnings: plan!.warnings } : {}), ...(opts.distributeOldWithNew ? { distributeOldWithNew: true } : {}),
            },
          });
        },
      });
    } catch (err) {
      this.audit({ actor, action: 'operator.start', code: (err as ManagerError).code ?? null, detail: { schedule: schedule.name, ...(opts.root ? { root: opts.root } : {}), ...(opts.algorithm ? { algorithm: opts.algorithm } : {}), refused: (err as Error).message } });
      throw err;
    }
    this.fleet.invalidate();
    return { ...rotationSummary(this.m.db, this.m.db.rotation(id)!), algorithm: plan.to, warnings: [...plan.warnings] };
  }

  /**
   * Renew the certificates of `deviceIds` under the active root (schedule
   * renew: one step per device, no new root), recorded with who asked;
   * `excludeOfflineAfterS` as for startRotation.
   */
  async startRenewal(deviceIds: readonly string[], actor: string, opts: { excludeOfflineAfterS?: number | null } = {}): Promise<RotationSummary> {
    let id: string;
    try {
      id = await this.m.orchestrator.startRenewal({
        deviceIds, onCreated: (rotationId) => {
          this.sdb.setExcludeOfflineAfter(rotationId, opts.excludeOfflineAfterS ?? null);
          this.audit({ actor, action: 'operator.renew', rotationId, detail: { devices: deviceIds.length, deviceIds: deviceIds.slice(0, 50), offlinePolicy: opts.excludeOfflineAfterS ? `exclude after ${opts.excludeOfflineAfterS} s` : 'wait' } });
        },
      });
    } catch (err) {
      this.audit({ actor, action: 'operator.renew', code: (err as ManagerError).code ?? null, detail: { devices: deviceIds.length, deviceIds: deviceIds.slice(0, 50), refused: (err as Error).message } });
      throw err;
    }
    this.fleet.invalidate();
    return rotationSummary(this.m.db, this.m.db.rotation(id)!);
  }

  /** Pause, resume or abort the open rotation `id`. */
  act(id: string, action: 'pause' | 'resume' | 'abort', actor: string): RotationSummary {
    const rot = this.requireRotation(id);
    if (rot.status === 'complete' || rot.status === 'rolled-back') throw new ManagerError('E_ROTATION_STATE', `rotation ${id} is ${rot.status}; there is nothing to ${action}`);
    const open = openRotation(this.m.db);
    if (open && open.id !== id) throw new ManagerError('E_ROTATION_STATE', `rotation ${open.id} is the open rotation; ${id} cannot be ${action}d`);
    this.audit({ actor, action: `operator.${action}`, rotationId: id });
    if (this.m.orchestrator.current()?.id !== id) this.m.orchestrator.attach(id);
    if (action === 'pause') this.m.orchestrator.pause(`paused by ${actor}`);
    else if (action === 'abort') abortRotation(this.m.orchestrator, actor, this.log);
    else this.m.orchestrator.resume(id);
    this.fleet.invalidate();
    return rotationSummary(this.m.db, this.m.db.rotation(id)!);
  }

  /** Exclude a device from the open rotation. */
  exclude(deviceId: string, reason: string, actor: string): string[] {
    this.m.db.device(deviceId);
    const open = openRotation(this.m.db);
    if (!open) throw new ManagerError('E_ROTATION_STATE', 'no rotation is open; there is nothing to exclude the device from');
    this.audit({ actor, action: 'operator.exclude', rotationId: open.id, deviceId, detail: { reason } });
    if (this.m.orchestrator.current()?.id !== open.id) this.m.orchestrator.attach(open.id);
    const steps = this.m.orchestrator.exclude(deviceId);
    this.fleet.invalidate();
    this.rotationDirty = true;
    this.scheduleLive();
    return steps;
  }

  /** Exclude every device of the running rotation that has been offline longer than its policy allows. */
  private applyOfflinePolicy(): void {
    const rot = this.m.orchestrator.current();
    if (!rot || (rot.status !== 'running' && rot.status !== 'rolling-back')) return;
    const limit = this.sdb.excludeOfflineAfter(rot.id);
    if (limit === null) return;
    const now = this.clock.now().getTime();
    for (const line of this.fleet.all()) {
      if (line.rotationId !== rot.id || line.excluded || line.stepStatus === 'done' || line.online === true) continue;
      const since = Date.parse(line.since ?? rot.createdAt);
      const away = (now - Math.max(since, Date.parse(rot.createdAt))) / 1000;
      if (away < limit) continue;
      try {
        this.audit({ actor: `policy:exclude-after-${limit}s`, action: 'policy.exclude', rotationId: rot.id, deviceId: line.id, detail: { offlineSince: line.since, seconds: Math.round(away) } });
        this.m.orchestrator.exclude(line.id);
        this.fleet.build();
      } catch (err) {
        this.log.warn('offline policy could not exclude the device', { deviceId: line.id, rotationId: rot.id, reason: (err as Error).message });
      }
    }
  }

  /** A rotation by id, or E_ROTATION_UNKNOWN. */
  requireRotation(id: string): RotationRow {
    const r = this.m.db.rotation(id);
    if (!r) throw new ManagerError('E_ROTATION_UNKNOWN', `no rotation ${id} in this manager database`);
    return r;
  }

  /** Fingerprint → R0/D/R1 label for the trust stores devices report. */
  rootLabels(): Map<string, TrustSlot['label']> {
    const labels = new Map<string, TrustSlot['label']>();
    // A renewal changes no root: its D/R1 columns hold the active root.
    const rotations = this.m.db.rotations().filter(changesRoot);
    rotations.forEach((r, i) => {
      labels.set(fingerprintPem(r.distribution), 'D');
      labels.set(fingerprintPem(r.newRoot), i === rotations.length - 1 ? 'R1' : 'R0');
    });
    for (const side of this.m.ca.separateRoots() ? ['server', 'client'] as const : [undefined]) {
      const active = fingerprintPem(this.m.ca.activeRoot(side).cert);
      if (!labels.has(active)) labels.set(active, 'R0');
    }
    return labels;
  }

  // --- orchestrator events ---

  private onAcked(row: StepRow): void {
    const latency = row.sentAt && row.ackedAt ? Math.max(0, (Date.parse(row.ackedAt) - Date.parse(row.sentAt)) / 1000) : 0;
    this.emit('acked', row, latency);
    this.changed([row.deviceId]);
  }

  private onStatus(rot: RotationRow): void {
    this.fleet.invalidate();
    // Once nothing is open, every device still on an older root is brought forward.
    if (rot.status === 'complete' || rot.status === 'rolled-back') setImmediate(() => { for (const p of this.presence.all()) if (p.online) this.catchUps.consider(p.state); });
    this.fleet.build();
    this.emitLive({ type: 'rotation', rotation: rotationSummary(this.m.db, this.m.db.rotation(rot.id) ?? rot) });
  }

  // --- live events ---

  private changed(ids: readonly string[]): void {
    this.fleet.invalidate();
    this.rotationDirty = true;
    this.noteFleetChange(ids);
  }

  private noteFleetChange(ids: readonly string[]): void {
    for (const id of ids) if (this.changedDevices.size < 100) this.changedDevices.add(id);
    this.scheduleLive();
  }

  private scheduleLive(): void {
    if (this.liveTimer || this.closed) return;
    this.liveTimer = setTimeout(() => this.flushLive(), this.o.liveIntervalMs ?? 250);
  }

  private flushLive(): void {
    this.liveTimer = null;
    if (this.closed) return;
    const counts: FleetPage['counts'] = this.fleet.counts();
    this.emitLive({ type: 'fleet', counts, changed: [...this.changedDevices] });
    this.changedDevices.clear();
    const rot = this.m.orchestrator.current();
    if (this.rotationDirty && rot) this.emitLive({ type: 'rotation', rotation: rotationSummary(this.m.db, this.m.db.rotation(rot.id) ?? rot) });
    this.rotationDirty = false;
  }

  /** Publish a live event to every listener (SSE clients). */
  emitLive(e: LiveEvent): void {
    if (this.listenerCount('live') > 0) this.emit('live', e);
  }

  /** Stop the orchestrator, leave the broker and close the database; a running rotation resumes at the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.liveTimer) clearTimeout(this.liveTimer);
    this.presence.close();
    this.broker.close();
    this.catchUps.close();
    clearInterval(this.policyTimer);
    try {
      this.audit({ actor: 'manager', action: 'service.stop', rotationId: this.m.orchestrator.current()?.id ?? null });
    } catch (err) {
      this.log.warn('could not record the service stop in the audit log', { reason: (err as Error).message });
    }
    await this.m.close();
  }
}

/**
 * Abort the loaded rotation: roll every device back to its state before
 * the rotation while that is still possible, else stop where it is (every
 * intermediate state authenticates) and say why.
 */
export function abortRotation(orchestrator: Manager['orchestrator'], actor: string, log: Logger): 'rolling-back' | 'aborted' {
  const rot = orchestrator.current();
  if (rot && rot.status !== 'rolling-back') {
    try {
      orchestrator.rollback(`aborted by ${actor}: rolling back`);
      return 'rolling-back';
    } catch (err) {
      if ((err as ManagerError).code !== 'E_ROLLBACK_IMPOSSIBLE') throw err;
      log.warn('rollback no longer possible; the rotation stops where it is', { rotationId: rot.id, reason: (err as Error).message });
      // The rotation's recorded error (and so the API answer and the audit entry) carries the code.
      orchestrator.abort(`E_ROLLBACK_IMPOSSIBLE: aborted by ${actor}; ${(err as Error).message.replace(/^E_[A-Z_]+: /, '')}`);
      return 'aborted';
    }
  }
  orchestrator.abort(`aborted by ${actor}: stopped sending, every device stays where it is`);
  return 'aborted';
}

/** Audit actions not streamed live (one per command and acknowledgement). */
const ROUTINE: ReadonlySet<string> = new Set(['step.sent', 'step.acked', 'step.resent']);

/** The API form of an audit row. */
export function toEntry(r: AuditRow): AuditEntry {
  return { seq: r.seq, at: r.at, actor: r.actor, action: r.action, rotationId: r.rotationId, deviceId: r.deviceId, step: r.step, code: r.code, detail: r.detail, hash: r.hash };
}
