/**
 * The long-running manager (`trustroll serve`): one MQTT session to the
 * broker, every device's retained state followed for presence, rotations
 * run, paused, aborted and resumed (a running rotation survives a restart
 * of the service), every operator action and every step event written to
 * the hash-chained audit log, and the views the HTTP API and the dashboard
 * read. Live changes are emitted as coalesced `live` events (live-feed.ts);
 * the offline policy is offline-policy.ts, the views are *-view.ts.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import type { RootSide } from '../../protocol/steps.ts';
import { BrokerMonitor } from '../broker/broker-monitor.ts';
import { ManagerError } from '../errors.ts';
import { planNewRoot, type NewRootPlan } from '../rotation/algorithm-plan.ts';
import type { CaKeyAlgorithm } from '../ca/keys.ts';
import type { RotationRow, StepRow } from '../fleet/fleet-db.ts';
import type { BrokerView, LiveEvent, RotationSummary } from '../http/api-types.ts';
import { openManager, type Manager } from '../manager.ts';
import type { ManagementPki } from '../pki/management-pki.ts';
import { DEFAULT_POLICY, openRotation, type RotationPolicy } from '../rotation/orchestrator.ts';
import { startableSchedule } from '../rotation/rotation-guards.ts';
import { abortRotation } from '../rotation/abort-rotation.ts';
import { CatchUps } from './catch-up.ts';
import type { Scheduler } from './scheduler.ts';
import { FleetView, rootLabels } from './fleet-view.ts';
import { Presence } from './presence.ts';
import { rotationSummary } from './rotation-view.ts';
import { ServiceDb } from './service-db.ts';
import { LiveFeed } from './live-feed.ts';
import { applyOfflinePolicy } from './offline-policy.ts';
import { offlinePolicyText, ROUTINE, startDetail, toEntry } from './audit-view.ts';
import { brokerView } from './broker-view.ts';
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
  private readonly live: LiveFeed;
  private closed = false;

  private constructor(readonly m: Manager, readonly o: ManagerServiceOptions) {
    super();
    this.setMaxListeners(0);
    this.log = o.logger.child({ component: 'manager-service' });
    this.clock = o.clock ?? systemClock;
    this.sdb = new ServiceDb(m.db);
    this.live = new LiveFeed({
      intervalMs: o.liveIntervalMs ?? 250, emit: (e) => this.emitLive(e), counts: () => this.fleet.counts(),
      rotation: () => { const rot = this.m.orchestrator.current(); return rot ? rotationSummary(this.m.db, this.m.db.rotation(rot.id) ?? rot) : null; },
    });
    this.presence = new Presence(this.sdb, this.clock, (ids) => this.live.noteDevices(ids));
    this.fleet = new FleetView(m.db, this.presence, this.clock, () => rootLabels(m.db, m.ca));
    m.transport.on('state', (s: DeviceState) => {
      this.presence.note(s);
      this.catchUps.consider(s);
    });
    const policy = { ...DEFAULT_POLICY, ...o.policy };
    this.catchUps = new CatchUps({
      m, pki: o.pki, clock: this.clock, logger: o.logger, audit: (e) => this.audit(e),
      ackTimeoutMs: policy.ackTimeoutMs, maxAttempts: policy.maxAttempts, onChange: (id) => this.changed([id]),
    });
    const offline = { orchestrator: m.orchestrator, sdb: this.sdb, fleet: this.fleet, clock: this.clock, log: this.log, audit: (e: AuditInput) => { this.audit(e); } };
    this.policyTimer = setInterval(() => applyOfflinePolicy(offline), o.policyIntervalMs ?? 1000).unref();
    this.broker = new BrokerMonitor(m.transport, { intervalMs: o.brokerSysIntervalMs, clock: this.clock, logger: o.logger });
    this.broker.on('sample', (sample) => this.emitLive({ type: 'broker', sample, stale: false }));
    this.broker.on('stale', (stale) => { const sample = this.broker.latest(); if (sample) this.emitLive({ type: 'broker', sample, stale }); });
  }

  /** The broker view of the API. */
  brokerView(): BrokerView {
    return brokerView(this.o.brokerUrl, this.m.transport, this.broker);
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
    const { schedule, root } = startableSchedule(scheduleName, opts.root);
    if (root && !opts.root) opts = { ...opts, root };
    const newRoot = { algorithm: opts.algorithm, subject: opts.subject };
    let id: string;
    let plan: NewRootPlan | undefined;
    try {
      plan = planNewRoot(this.m.db, this.m.ca.activeRoot(opts.root).cert, newRoot);
      id = await this.m.orchestrator.start({
        schedule, newRoot, distributeOldWithNew: opts.distributeOldWithNew, onCreated: (rotationId) => {
          this.sdb.setExcludeOfflineAfter(rotationId, opts.excludeOfflineAfterS ?? null);
          this.audit({ actor, action: 'operator.start', rotationId, detail: startDetail(schedule.name, opts, plan!) });
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
          this.audit({ actor, action: 'operator.renew', rotationId, detail: { devices: deviceIds.length, deviceIds: deviceIds.slice(0, 50), offlinePolicy: offlinePolicyText(opts.excludeOfflineAfterS) } });
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
    this.live.noteRotation();
    return steps;
  }

  /** A rotation by id, or E_ROTATION_UNKNOWN. */
  requireRotation(id: string): RotationRow {
    const r = this.m.db.rotation(id);
    if (!r) throw new ManagerError('E_ROTATION_UNKNOWN', `no rotation ${id} in this manager database`);
    return r;
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
    this.live.noteRotation();
    this.live.noteDevices(ids);
  }

  /** Publish a live event to every listener (SSE clients). */
  emitLive(e: LiveEvent): void {
    if (this.listenerCount('live') > 0) this.emit('live', e);
  }

  /** Stop the orchestrator, leave the broker and close the database; a running rotation resumes at the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.live.close();
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
