/**
 * A whole fleet in one process for tests and benchmarks: a CA, a manager
 * database and orchestrator, N server and M client agents each with its own
 * SQLite trust store and key store, joined by the in-process transport.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../agent/agent.ts';
import { SqliteStateStore } from '../agent/sqlite-state-store.ts';
import { RecordStateStore } from '../agent/record-state-store.ts';
import type { StateStore } from '../agent/state-store.ts';
import { MemoryRecordStore } from './memory-record-store.ts';
import { systemClock, systemTimers, type Clock } from '../protocol/clock.ts';
import { createLogger, type Logger } from '../protocol/log.ts';
import { SCHEDULES, type Role, type Schedule } from '../protocol/steps.ts';
import { CaAuthority, type CaPolicy } from '../manager/pki/ca-authority.ts';
import { FleetDb, type RotationRow } from '../manager/fleet/fleet-db.ts';
import { InProcessTransport } from '../manager/transport/in-process-transport.ts';
import type { Orchestrator, RotationPolicy } from '../manager/rotation/orchestrator.ts';
import { buildOrchestrator } from '../manager/manager.ts';
import { AuditLog } from '../manager/audit/audit-log.ts';
import { verifyAudit, type AuditReport } from '../manager/audit/audit-check.ts';
import { MemoryKeyStore } from './memory-key-store.ts';
import type { KeyAlgorithm } from '../hal/key-store.ts';
import type { NewRootChoice } from '../manager/rotation/authority.ts';
import { seededRandom } from './random.ts';
import type { FleetSnapshot } from './auth-matrix.ts';

/** Fleet shape and link behaviour. */
export interface FleetOptions {
  servers: number;
  clients: number;
  seed?: number;
  maxLatencyMs?: number;
  dropRate?: number;
  duplicateRate?: number;
  policy?: Partial<RotationPolicy>;
  caPolicy?: Partial<CaPolicy>;
  /** Algorithm of every device's key (default P-256). */
  deviceAlgorithm?: KeyAlgorithm;
  clock?: Clock;
  logger?: Logger;
  dir?: string;
  /** Device records in SQLite files (default) or in memory (simulations of 10,000 devices). */
  storage?: 'sqlite' | 'memory';
  /** Separate roots: a client root with this subject signs the clients (the fleet root then signs only the servers). */
  clientRootSubject?: string;
}

/** Log lines of test fleets (kept in memory, printed only when a test wants them). */
export const fleetLog: string[] = [];

/** An in-process fleet (tests, benchmarks, the demo); `close()` removes its folder. */
export class InProcessFleet {
  readonly agents = new Map<string, Agent>();
  readonly keys = new Map<string, MemoryKeyStore>();
  readonly stores = new Map<string, StateStore>();
  private readonly listeners: ((label: string) => void)[] = [];

  transport!: InProcessTransport;
  /** The manager's audit log: the orchestrator's own instance, so its `onAppend` listeners see every entry (checkpoints). */
  audit!: AuditLog;
  orchestrator!: Orchestrator;

  private constructor(
    readonly dir: string,
    readonly ca: CaAuthority,
    readonly db: FleetDb,
    readonly clock: Clock,
    private readonly o: FleetOptions,
    private readonly logger: Logger,
    private readonly done: { promise: Promise<RotationRow>; resolve: (r: RotationRow) => void },
  ) {
    this.startManager();
  }

  /** (Re)create the manager side: a fresh transport session and orchestrator over the same database. */
  private startManager(): void {
    const random = seededRandom(this.o.seed ?? 1);
    this.transport = new InProcessTransport({ timers: systemTimers, random, maxLatencyMs: this.o.maxLatencyMs ?? 0, dropRate: this.o.dropRate, duplicateRate: this.o.duplicateRate });
    this.orchestrator = buildOrchestrator({
      db: this.db, transport: this.transport, authority: this.ca, clock: this.clock, logger: this.logger, audit: (this.audit ??= new AuditLog(this.db)),
      policy: { ackTimeoutMs: 2_000, sweepIntervalMs: 50, backoffBaseMs: 20, backoffMaxMs: 200, ...this.o.policy },
      events: { complete: (r) => this.done.resolve(r), failed: (r) => this.done.resolve(r) },
    });
  }

  /**
   * Simulate a manager crash and restart: the old orchestrator and its
   * transport are dropped (in-flight acknowledgements are lost), a new one
   * resumes from SQLite, and devices reconnect.
   */
  async restartManager(): Promise<void> {
    this.orchestrator.close();
    await this.transport.close();
    this.startManager();
    for (const id of this.agents.keys()) if (!this.offline.has(id)) this.connect(id);
    this.orchestrator.resume();
  }

  /** Devices currently disconnected by `disconnect`. */
  readonly offline = new Set<string>();

  /** Take a device offline; commands for it wait in its session. */
  disconnect(id: string): void {
    this.offline.add(id);
    this.transport.detach(id);
  }

  /** Build and provision the fleet. */
  static async create(o: FleetOptions): Promise<InProcessFleet> {
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'trustroll-fleet-'));
    const clock = o.clock ?? systemClock;
    const logger = o.logger ?? createLogger({ level: 'debug', sink: (line) => { fleetLog.push(line); if (fleetLog.length > 5000) fleetLog.splice(0, 1000); } });
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Fleet Root,O=trustroll test', now: clock.now(), policy: o.caPolicy, clientSubject: o.clientRootSubject });
    const db = new FleetDb(join(dir, 'manager.db'));
    let resolve!: (r: RotationRow) => void;
    const promise = new Promise<RotationRow>((r) => (resolve = r));
    const fleet = new InProcessFleet(dir, ca, db, clock, o, logger, { promise, resolve });
    const ids: [string, Role][] = [
      ...Array.from({ length: o.servers }, (_, i) => [`srv-${i + 1}`, 'server'] as [string, Role]),
      ...Array.from({ length: o.clients }, (_, i) => [`cli-${i + 1}`, 'client'] as [string, Role]),
    ];
    for (const [id, role] of ids) await fleet.addDevice(id, role, logger);
    return fleet;
  }

  private async addDevice(id: string, role: Role, logger: Logger): Promise<void> {
    const keys = new MemoryKeyStore();
    const key = await keys.create('device', this.o.deviceAlgorithm ?? 'P-256');
    const certificate = this.ca.issueLeaf({ commonName: id, spki: key.spki, role }, this.clock.now());
    const store: StateStore = this.o.storage === 'memory' ? new RecordStateStore(new MemoryRecordStore(), id) : new SqliteStateStore(join(this.dir, `${id}.db`));
    const agent = await Agent.provision(
      // Simulated devices accept the unsafe schedule too, so tests and the demo can show why it is unsafe.
      { deviceId: id, role, store, keys, clock: this.clock, logger: logger.child({ deviceId: id }), schedules: SCHEDULES },
      { root: this.ca.peerRoot(role).cert, certificate, keyLabel: 'device', ...(this.ca.separateRoots() ? { issuerRoot: this.ca.issuingRoot(role).cert } : {}) },
    );
    this.db.addDevice({ id, role, commonName: id, spki: key.spki, certificate });
    agent.onChange(() => {
      for (const l of this.listeners) l(`${id} changed`);
    });
    this.agents.set(id, agent);
    this.keys.set(id, keys);
    this.stores.set(id, store);
    this.connect(id);
  }

  /** Attach a device to the transport (again). */
  connect(id: string): void {
    this.offline.delete(id);
    const agent = this.agents.get(id)!;
    this.transport.attach(id, async (raw) => JSON.stringify(await agent.handle(raw)));
  }

  /** Called after every durable change of any device, with a label naming it. */
  onChange(listener: (label: string) => void): void {
    this.listeners.push(listener);
  }

  /** The fleet's trust state right now. */
  snapshot(label: string): FleetSnapshot {
    return {
      label,
      devices: [...this.agents.values()].map((a) => ({ id: a.deviceId, role: a.role, anchors: a.trustAnchors(), identities: a.identities().map((i) => i.cert) })),
    };
  }

  /** Start a rotation and wait until it completes or stops. */
  async rotate(schedule: Schedule, opts: { unsafe?: boolean; timeoutMs?: number; newRoot?: NewRootChoice; distributeOldWithNew?: boolean } = {}): Promise<RotationRow> {
    await this.orchestrator.start({ schedule, unsafe: opts.unsafe, newRoot: opts.newRoot, distributeOldWithNew: opts.distributeOldWithNew });
    return this.waitForEnd(opts.timeoutMs);
  }

  /** Wait for the running rotation to complete or fail. */
  waitForEnd(timeoutMs = 30_000): Promise<RotationRow> {
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`rotation did not end within ${timeoutMs} ms`)), timeoutMs); });
    return Promise.race([this.done.promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Reset the end-of-rotation latch (for a second rotation or a resume). */
  rearm(): void {
    this.done.promise = new Promise<RotationRow>((r) => (this.done.resolve = r));
  }

  /** The audit trail of this fleet's manager, checked: chain intact and every send after its prerequisites. */
  verifyAudit(extraSchedules: readonly Schedule[] = []): AuditReport {
    return verifyAudit(this.audit.all(), { ...SCHEDULES, ...Object.fromEntries(extraSchedules.map((s) => [s.name, s])) });
  }

  async close(): Promise<void> {
    this.orchestrator.close();
    await this.transport.close();
    for (const s of this.stores.values()) await s.close();
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
