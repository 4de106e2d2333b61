/**
 * A fleet joined by a real MQTT broker: like demo/in-process-fleet.ts (CA,
 * FleetDb, Orchestrator; agents with SqliteStateStore and MemoryKeyStore),
 * but the manager talks through MqttManagerTransport, every agent through
 * its own DeviceLink and management certificate, and every command is
 * signed. The broker is a Mosquitto started for the fleet
 * (test/support/mosquitto.ts) or the embedded aedes broker.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../agent/agent.ts';
import { DeviceLink, type DeviceLinkHooks } from '../agent/mqtt-link.ts';
import { SqliteStateStore } from '../agent/sqlite-state-store.ts';
import type { HistoryEntry, StateStore } from '../agent/state-store.ts';
import { RecordStateStore } from '../agent/record-state-store.ts';
import { MemoryRecordStore } from './memory-record-store.ts';
import { MemoryKeyStore } from './memory-key-store.ts';
import { CaAuthority } from '../manager/pki/ca-authority.ts';
import { EmbeddedBroker } from '../manager/broker/embedded-broker.ts';
import { FleetDb, type RotationRow } from '../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../manager/pki/management-pki.ts';
import type { MqttManagerTransport } from '../manager/transport/mqtt-transport.ts';
import { buildOrchestrator, mqttTransport } from '../manager/manager.ts';
import { AuditLog } from '../manager/audit/audit-log.ts';
import { verifyAudit, type AuditReport } from '../manager/audit/audit-check.ts';
import type { Orchestrator, RotationPolicy } from '../manager/rotation/orchestrator.ts';
import { systemClock, type Clock } from '../protocol/clock.ts';
import { commandVerifier } from '../protocol/command-signature.ts';
import { createLogger, type Logger } from '../protocol/log.ts';
import type { Role, Schedule } from '../protocol/steps.ts';
import { Mosquitto } from './mosquitto.ts';
import { AgentHost } from './agent-hosts.ts';

/** Fleet shape and broker choice. */
export interface MqttFleetOptions {
  servers: number;
  clients: number;
  broker: 'mosquitto' | 'embedded';
  policy?: Partial<RotationPolicy>;
  /** Per-device link hooks (e.g. drop the connection before a PUBACK). */
  hooks?: (deviceId: string) => DeviceLinkHooks | undefined;
  logger?: Logger;
  /** Device records in SQLite files (default) or in memory (benchmarks with 10,000 devices). */
  storage?: 'sqlite' | 'memory';
  /** Mosquitto's autosave interval in seconds (default 1: tests kill the broker and expect little loss). */
  brokerAutosaveS?: number;
  /** The broker's `$SYS` statistics interval (default 10 s; Mosquitto rounds up to whole seconds; 0: none). */
  brokerSysIntervalMs?: number;
  /**
   * The clock of the CA, the manager and the devices (default the system
   * clock; scheduler tests simulate time). The management PKI and the
   * broker's TLS always use the system clock.
   */
  clock?: Clock;
  /** Separate client and server roots: the client root's subject (the server root keeps the fleet root's). */
  clientRootSubject?: string;
  /** Device links opened at once while starting (default 100). */
  connectConcurrency?: number;
  /**
   * Host the devices in this many child processes (demo/agent-host.ts)
   * instead of this one, as real devices run apart from the manager
   * (benchmarks). Such a fleet has no in-process agents, stores or links.
   */
  agentProcesses?: number;
}

/** Log lines of MQTT test fleets (kept in memory; a failing test may print them). */
export const mqttFleetLog: string[] = [];

const realClock = systemClock;
const TEST_BACKOFF = { initialMs: 50, maxMs: 400 };

/** A fleet over MQTT; `close()` stops everything and removes its folder. */
export class MqttFleet {
  readonly agents = new Map<string, Agent>();
  readonly stores = new Map<string, StateStore>();
  readonly links = new Map<string, DeviceLink>();
  /** Child processes hosting the devices (with `agentProcesses`), and which one hosts each device. */
  readonly hosts: AgentHost[] = [];
  private readonly hostOf = new Map<string, AgentHost>();
  transport!: MqttManagerTransport;
  private audit!: AuditLog;
  orchestrator!: Orchestrator;
  private done!: { promise: Promise<RotationRow>; resolve: (r: RotationRow) => void };

  private constructor(
    readonly dir: string,
    readonly pki: ManagementPki,
    readonly broker: Mosquitto | EmbeddedBroker,
    readonly ca: CaAuthority,
    readonly db: FleetDb,
    readonly logger: Logger,
    private readonly o: MqttFleetOptions,
  ) {
    this.rearm();
    this.audit = new AuditLog(db);
    this.clock = o.clock ?? realClock;
  }

  /** The clock of the CA, the manager and the devices. */
  readonly clock: Clock;

  /** Start the broker, the manager and every device (connected and subscribed). */
  static async create(o: MqttFleetOptions): Promise<MqttFleet> {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-mqtt-fleet-'));
    const logger = o.logger ?? createLogger({ level: 'debug', sink: (l) => { mqttFleetLog.push(l); if (mqttFleetLog.length > 20_000) mqttFleetLog.splice(0, 5_000); } });
    const pki = await ManagementPki.create({ now: realClock.now() });
    const broker = o.broker === 'mosquitto'
      ? await Mosquitto.start(pki, { autosaveIntervalS: o.brokerAutosaveS, sysIntervalS: o.brokerSysIntervalMs === undefined ? undefined : Math.ceil(o.brokerSysIntervalMs / 1000) })
      : await EmbeddedBroker.start({ ca: pki.ca, ...pki.broker, logger, sysIntervalMs: o.brokerSysIntervalMs });
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll mqtt test', now: (o.clock ?? realClock).now(), ...(o.clientRootSubject ? { clientSubject: o.clientRootSubject } : {}) });
    const fleet = new MqttFleet(dir, pki, broker, ca, new FleetDb(join(dir, 'manager.db')), logger, o);
    await fleet.startManager();
    const ids: [string, Role][] = [
      ...Array.from({ length: o.servers }, (_, i) => [`srv-${i + 1}`, 'server'] as [string, Role]),
      ...Array.from({ length: o.clients }, (_, i) => [`cli-${i + 1}`, 'client'] as [string, Role]),
    ];
    if (o.agentProcesses) {
      await fleet.startHosts(ids, o.agentProcesses);
      return fleet;
    }
    for (const [id, role] of ids) await fleet.addDevice(id, role);
    const width = o.connectConcurrency ?? 100;
    for (let i = 0; i < ids.length; i += width) await Promise.all(ids.slice(i, i + width).map(([id]) => fleet.connect(id)));
    return fleet;
  }

  /** mqtts URL of the broker. */
  get url(): string {
    return this.broker.url;
  }

  /** The Mosquitto instance (throws for the embedded broker). */
  get mosquitto(): Mosquitto {
    if (!(this.broker instanceof Mosquitto)) throw new Error('this fleet runs the embedded broker');
    return this.broker;
  }

  /**
   * (Re)start the manager: transport session and orchestrator over the same
   * database. With `resume`, the rotation is resumed before the session's
   * backlog (acknowledgements made while the manager was away) arrives.
   */
  async startManager(opts: { resume?: string } = {}): Promise<void> {
    // The orchestrator registers for acknowledgements before the session's backlog can arrive.
    this.transport = mqttTransport({ url: this.url, pki: this.pki, logger: this.logger, reconnectPeriodMs: 100, db: this.db });
    this.orchestrator = buildOrchestrator({
      db: this.db, transport: this.transport, authority: this.ca, clock: this.clock, logger: this.logger, pki: this.pki, audit: this.audit,
      policy: { ackTimeoutMs: 3_000, sweepIntervalMs: 50, backoffBaseMs: 50, backoffMaxMs: 500, ...this.o.policy },
      events: { complete: (r) => this.done.resolve(r), failed: (r) => this.done.resolve(r) },
    });
    if (opts.resume) this.orchestrator.resume(opts.resume);
    await this.transport.ready(10_000);
  }

  /** Stop the manager (orchestrator timers and MQTT session; state stays in SQLite and on the broker). */
  async stopManager(): Promise<void> {
    this.orchestrator.close();
    await this.transport.close();
  }

  private async addDevice(id: string, role: Role): Promise<void> {
    const keys = new MemoryKeyStore();
    const key = await keys.create('device', 'P-256');
    const certificate = this.enroll(id, role, key.spki);
    const store: StateStore = this.o.storage === 'memory' ? new RecordStateStore(new MemoryRecordStore(), id) : new SqliteStateStore(join(this.dir, `${id}.db`));
    const agent = await Agent.provision(
      { deviceId: id, role, store, keys, clock: this.clock, logger: this.logger.child({ deviceId: id }), verifySignature: commandVerifier(this.pki.trustedCommandKeys()) },
      // With separate roots a device trusts the other side's root and keeps its own certificate's root as its issuer.
      { root: this.ca.peerRoot(role).cert, certificate, keyLabel: 'device', ...(this.ca.separateRoots() ? { issuerRoot: this.ca.issuingRoot(role).cert } : {}) },
    );
    this.agents.set(id, agent);
    this.stores.set(id, store);
  }

  /** Issue a device's leaf under the active root and enroll it in the manager's database. */
  private enroll(id: string, role: Role, spki: Buffer): string {
    const certificate = this.ca.issueLeaf({ commonName: id, spki, role }, this.clock.now());
    this.db.addDevice({ id, role, commonName: id, spki, certificate });
    return certificate;
  }

  /** Spread the devices over `count` host processes: keys made there, certificates issued here, then every link connected. */
  private async startHosts(ids: [string, Role][], count: number): Promise<void> {
    for (let i = 0; i < count; i++) this.hosts.push(AgentHost.start());
    const root = this.ca.activeRoot().cert;
    const commandKeys = [...this.pki.trustedCommandKeys()].map(([keyId, key]) => [keyId, key.export({ type: 'spki', format: 'pem' }) as string] as [string, string]);
    await Promise.all(this.hosts.map(async (host, h) => {
      const mine = ids.filter((_, i) => i % count === h);
      for (const [id] of mine) this.hostOf.set(id, host);
      await host.init({ url: this.url, ca: this.pki.ca, commandKeys, logLevel: 'error', connectConcurrency: this.o.connectConcurrency ?? 100 });
      const spkis = await host.makeKeys(mine);
      await host.provision(mine.map(([id, role]) => {
        const { cert, key } = this.pki.device(id);
        return { deviceId: id, role, root, certificate: this.enroll(id, role, spkis.get(id)!), link: { cert, key } };
      }));
      await host.connectAll();
    }));
  }

  /** Start (or restart) a device's link and wait until it is subscribed. */
  async connect(id: string): Promise<DeviceLink> {
    const link = new DeviceLink({
      url: this.url, agent: this.agents.get(id)!, tls: { ca: this.pki.ca, ...this.pki.device(id) }, clock: this.clock, logger: this.logger,
      backoff: TEST_BACKOFF, hooks: this.o.hooks?.(id),
    });
    this.links.set(id, link);
    await link.ready(10_000);
    return link;
  }

  /** Take a device offline cleanly; its session (and queued commands) stay on the broker. */
  async disconnect(id: string): Promise<void> {
    await this.links.get(id)?.close();
    this.links.delete(id);
  }

  /** Start a rotation and wait until it completes or stops. */
  async rotate(schedule: Schedule, timeoutMs = 20_000): Promise<RotationRow> {
    await this.orchestrator.start({ schedule });
    return this.waitForEnd(timeoutMs);
  }

  /** Wait for the running rotation to complete or fail. */
  waitForEnd(timeoutMs = 20_000): Promise<RotationRow> {
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`rotation did not end within ${timeoutMs} ms`)), timeoutMs); });
    return Promise.race([this.done.promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Reset the end-of-rotation latch (before a resume). */
  rearm(): void {
    let resolve!: (r: RotationRow) => void;
    const promise = new Promise<RotationRow>((r) => (resolve = r));
    this.done = { promise, resolve };
  }

  /** The steps a device has applied, oldest first. */
  history(id: string): Promise<HistoryEntry[]> {
    return this.hostOf.get(id)?.history(id) ?? this.stores.get(id)!.history(100);
  }

  /** SHA-256 over a device's database files (db + WAL; not -shm), to prove nothing was written. */
  fileHash(id: string): string {
    const h = createHash('sha256');
    for (const f of readdirSync(this.dir).filter((n) => n.startsWith(`${id}.db`) && !n.endsWith('-shm')).sort()) h.update(f).update(readFileSync(join(this.dir, f)));
    return h.digest('hex');
  }

  /** The audit trail of this fleet's manager, checked: chain intact and every send after its prerequisites. */
  verifyAudit(): AuditReport {
    return verifyAudit(this.audit.all());
  }

  /** Stop links, manager and broker; remove every file. */
  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close().catch(() => undefined)));
    await Promise.all(this.hosts.map((h) => h.close()));
    this.orchestrator?.close();
    await this.transport?.close().catch(() => undefined);
    await this.broker.close();
    for (const s of this.stores.values()) await s.close();
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
