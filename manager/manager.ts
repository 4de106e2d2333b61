/**
 * The one place a manager is wired: the orchestrator over a transport, with
 * the management PKI's command signer and the device-signature ack
 * verifier. `trustroll serve`, `trustroll rotate`, the demo, the test
 * fleets and the benchmarks all build their manager here, so a change to
 * the wiring (a new check, a new event) reaches every one of them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock, systemTimers, type Clock, type Timers } from '../protocol/clock.ts';
import { commandSigner } from '../protocol/command-signature.ts';
import type { Logger } from '../protocol/log.ts';
import type { DeviceState } from '../protocol/messages/device-state.ts';
import { ackVerifier } from './transport/ack-verifier.ts';
import { AuditLog, type AuditRow } from './audit/audit-log.ts';
import { auditedEvents } from './audit/audit-recorder.ts';
import { AuditCheckpointer } from './audit/audit-checkpoint.ts';
import { CheckpointStore, loadOrCreateAuditKey } from './audit/audit-checkpoint-store.ts';
import type { RotationAuthority } from './rotation/authority.ts';
import { CaAuthority } from './pki/ca-authority.ts';
import { ManagerError } from './errors.ts';
import { FleetDb } from './fleet/fleet-db.ts';
import type { ManagementPki } from './pki/management-pki.ts';
import { MqttManagerTransport } from './transport/mqtt-transport.ts';
import { Orchestrator, type OrchestratorEvents, type RotationPolicy } from './rotation/orchestrator.ts';
import { followPresence, type PresenceSource } from './rotation/presence-gate.ts';
import type { ManagerTransport } from './transport/transport.ts';
import { attachReconciler, type Reconciler } from './fleet/reconcile.ts';

/** What an orchestrator is built from. */
export interface OrchestratorWiring {
  db: FleetDb;
  authority: RotationAuthority;
  transport: ManagerTransport;
  /** Commands are signed with this PKI's command key; without it they go unsigned (in-process simulations only). */
  pki?: Pick<ManagementPki, 'commandKey'>;
  /** Drop acknowledgements not signed by the device's key (default true). */
  verifyAcks?: boolean;
  logger: Logger;
  clock?: Clock;
  timers?: Timers;
  policy?: Partial<RotationPolicy>;
  /** Which devices are offline: their steps are held, not failed (rotation/presence-gate.ts); absent = every device counts as online. */
  presence?: PresenceSource;
  events?: OrchestratorEvents;
  /** Record every event in this audit log (with `onAudit` told of each entry). */
  audit?: AuditLog;
  onAudit?: (row: AuditRow) => void;
}

/** Build the orchestrator with the signer, the verifier and (optionally) the audit trail. */
export function buildOrchestrator(w: OrchestratorWiring): Orchestrator {
  const clock = w.clock ?? systemClock;
  return new Orchestrator({
    db: w.db, transport: w.transport, authority: w.authority, logger: w.logger,
    clock, timers: w.timers ?? systemTimers,
    sign: w.pki ? commandSigner(w.pki.commandKey) : undefined,
    verifyAck: w.verifyAcks === false ? undefined : ackVerifier(w.db),
    presence: w.presence, policy: w.policy, events: w.audit ? auditedEvents(w.audit, w.db, clock, w.events, w.onAudit) : w.events,
  });
}

/** The manager's MQTT session to `url` with its management certificate. */
export function mqttTransport(o: { url: string; pki: Pick<ManagementPki, 'ca' | 'manager'>; logger: Logger; clock?: Clock; reconnectPeriodMs?: number; db?: FleetDb }): MqttManagerTransport {
  const db = o.db;
  const t = new MqttManagerTransport({
    url: o.url, tls: { ca: o.pki.ca, ...o.pki.manager }, logger: o.logger, clock: o.clock, reconnectPeriodMs: o.reconnectPeriodMs,
    ...(db ? { routeOf: (id: string) => db.deviceVia(id) } : {}),
  });
  if (db) t.on('state', (s: DeviceState) => recordAccepts(db, s, o.logger));
  return t;
}

/**
 * Keep what a device's agent applies (its state's `accepts`) in the fleet
 * database, so a rotation that would send a field some agent refuses is
 * stopped before it starts (Orchestrator.start). Only online and behind
 * states speak for the agent: a last will carries nothing.
 */
function recordAccepts(db: FleetDb, s: DeviceState, logger: Logger): void {
  if (s.status === 'offline') return;
  try {
    if (db.recordAccepts(s.deviceId, s.accepts ?? [])) logger.info('device agent reports the optional step fields it applies', { deviceId: s.deviceId, accepts: s.accepts ?? [] });
  } catch (err) {
    logger.warn('could not record what a device\'s agent accepts', { deviceId: s.deviceId, reason: (err as Error).message });
  }
}

/** A manager opened on its data folder. */
export interface Manager {
  readonly dataDir: string;
  readonly db: FleetDb;
  readonly ca: CaAuthority;
  readonly transport: MqttManagerTransport;
  readonly orchestrator: Orchestrator;
  /** Re-sends acknowledged steps a device lost (fleet/reconcile.ts). */
  readonly reconciler: Reconciler;
  /** The hash-chained audit trail every event of this manager is written to. */
  readonly audit: AuditLog;
  /** Signs the audit chain's head into audit/ of the data folder and the broker's retained checkpoint (audit/audit-checkpoint.ts). */
  readonly checkpoints: AuditCheckpointer;
  /** Stop timers and the MQTT session, close the database (state stays on disk and on the broker). */
  close(): Promise<void>;
}

/** How to open a manager on a data folder (CA under ca/, fleet database manager.db). */
export interface OpenManagerOptions {
  dataDir: string;
  pki: ManagementPki;
  brokerUrl: string;
  logger: Logger;
  clock?: Clock;
  timers?: Timers;
  policy?: Partial<RotationPolicy>;
  events?: OrchestratorEvents;
  reconnectPeriodMs?: number;
  /** Wrap the transport the orchestrator sends through (the demo paces it). */
  wrapTransport?: (t: MqttManagerTransport) => ManagerTransport;
  /** Called with every audit entry written (live views). */
  onAudit?: (row: AuditRow) => void;
  /** Longest time between an audit entry and the signed checkpoint covering it (default 5 minutes). */
  checkpointIntervalMs?: number;
}

/**
 * Open the CA and the fleet database in `dataDir` and wire the manager.
 * The orchestrator registers for acknowledgements before the MQTT session
 * can deliver its backlog; the caller resumes or starts a rotation.
 */
export async function openManager(o: OpenManagerOptions): Promise<Manager> {
  const clock = o.clock ?? systemClock;
  if (!existsSync(join(o.dataDir, 'ca', 'ca.json'))) throw new ManagerError('E_NO_ROOT', `no CA in ${o.dataDir}; run "trustroll ca init --data ${o.dataDir} --subject ..." first`);
  const ca = await CaAuthority.openOrInit(join(o.dataDir, 'ca'), { subject: 'unused', now: clock.now() });
  const db = new FleetDb(join(o.dataDir, 'manager.db'));
  const transport = mqttTransport({ url: o.brokerUrl, pki: o.pki, logger: o.logger, clock, reconnectPeriodMs: o.reconnectPeriodMs, db });
  const audit = new AuditLog(db);
  // Signed checkpoints of the audit chain's head, with a key kept apart from manager.db, in audit/ and retained on the broker.
  const checkpoints = new AuditCheckpointer({
    log: audit, store: new CheckpointStore(o.dataDir), key: loadOrCreateAuditKey(o.dataDir), clock, timers: o.timers ?? systemTimers,
    logger: o.logger, intervalMs: o.checkpointIntervalMs, publish: (note) => transport.publishAuditCheckpoint(note),
  });
  const sender = o.wrapTransport ? o.wrapTransport(transport) : transport;
  // The devices' retained states (last will `offline`) tell an offline device from a silent one: its steps wait, never fail.
  const presence = followPresence(transport, (deviceId, err) => o.logger.error('presence listener failed', { deviceId, reason: err.message }));
  const orchestrator = buildOrchestrator({
    db, authority: ca, transport: sender, pki: o.pki, presence,
    logger: o.logger, clock, timers: o.timers, policy: o.policy, events: o.events, audit, onAudit: o.onAudit,
  });
  // Devices that report less than they acknowledged get the lost steps again (through the same, possibly paced, transport).
  const reconciler = attachReconciler(transport, { db, logger: o.logger, clock, send: (cmd) => sender.send(cmd) });
  return {
    dataDir: o.dataDir, db, ca, transport, orchestrator, audit, reconciler, checkpoints,
    async close() {
      reconciler.close();
      orchestrator.close();
      checkpoints.close();
      // The last checkpoint reaches the broker before the session is dropped (the data folder has it either way).
      if (transport.connected) await checkpoints.published(2_000);
      await transport.close();
      db.close();
    },
  };
}
