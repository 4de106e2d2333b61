/**
 * A small real fleet for the self-test suites: a Mosquitto with the
 * management PKI, the manager's CA and database, and devices provisioned
 * the factory way (file-backed HAL key, CSR, enrollment, SQLite trust store,
 * an agent configuration file). Devices run in this process through the
 * agent's own runtime (`runDevice`: MQTT link, mTLS service or probes,
 * health file), so the self-test CLI and `runSelftest` meet live agents.
 * A rotation can be driven one batch of commands at a time (`GatedTransport`)
 * so a test can look at the fleet at every phase.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { loadAgentConfig, type AgentConfig } from '../../agent/config.ts';
import { readHealth } from '../../agent/health-file.ts';
import { runDevice, type RunningDevice } from '../../agent/runtime.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { freePort, Mosquitto } from '../../demo/mosquitto.ts';
import { openHal } from '../../hal/config.ts';
import { ackVerifier } from '../../manager/transport/ack-verifier.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { enrollFromCsr } from '../../manager/pki/enrollment.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { MqttManagerTransport } from '../../manager/transport/mqtt-transport.ts';
import { Orchestrator } from '../../manager/rotation/orchestrator.ts';
import type { ManagerTransport } from '../../manager/transport/transport.ts';
import { systemClock, systemTimers } from '../../protocol/clock.ts';
import { commandSigner } from '../../protocol/command-signature.ts';
import { buildCsr } from '../../protocol/csr.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Command } from '../../protocol/messages/command.ts';
import type { Role, Schedule } from '../../protocol/steps.ts';

/** Log lines of the fleet (a failing test may print them). */
export const selftestFleetLog: string[] = [];
const logger = createLogger({ level: 'warn', sink: (l) => { selftestFleetLog.push(l); if (selftestFleetLog.length > 5_000) selftestFleetLog.splice(0, 1_000); } });

/** A device of the fleet: its folder, configuration file and, while running, its runtime. */
export interface FleetDevice {
  id: string;
  role: Role;
  dir: string;
  configPath: string;
  config: AgentConfig;
  running: RunningDevice | null;
}

/** Holds every command until the test releases the batch; acknowledgements pass straight through. */
export class GatedTransport implements ManagerTransport {
  private held: Command[] = [];
  constructor(private readonly inner: ManagerTransport) {}
  send(cmd: Command): void {
    this.held.push(cmd);
  }
  onAck(handler: (raw: Buffer | string | object) => void): void {
    this.inner.onAck(handler);
  }
  /** Commands waiting. */
  get waiting(): number {
    return this.held.length;
  }
  /** Send everything held; returns the commands sent. */
  release(): Command[] {
    const batch = this.held.splice(0);
    for (const c of batch) this.inner.send(c);
    return batch;
  }
  /** Send what is held for one device only (the rest stays held); returns the commands sent. */
  releaseFor(deviceId: string): Command[] {
    const batch = this.held.filter((c) => c.deviceId === deviceId);
    this.held = this.held.filter((c) => c.deviceId !== deviceId);
    for (const c of batch) this.inner.send(c);
    return batch;
  }
  /** Send commands again, unchanged (as the manager's resend does). */
  resend(cmds: Command[]): void {
    for (const c of cmds) this.inner.send(c);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The fleet; `close()` stops devices, manager and broker and removes every file. */
export class SelftestFleet {
  readonly devices = new Map<string, FleetDevice>();
  orchestrator: Orchestrator | null = null;
  gate: GatedTransport | null = null;
  private constructor(readonly dir: string, readonly pki: ManagementPki, readonly broker: Mosquitto, readonly ca: CaAuthority, readonly db: FleetDb) {}

  /** Broker, CA and database; add devices with `provision`. */
  static async create(): Promise<SelftestFleet> {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-selftest-'));
    const now = systemClock.now();
    const pki = await ManagementPki.create({ now });
    const broker = await Mosquitto.start(pki);
    const ca = await CaAuthority.openOrInit(join(dir, 'manager', 'ca'), { subject: 'CN=Selftest Fleet Root,O=trustroll test', now });
    return new SelftestFleet(dir, pki, broker, ca, new FleetDb(join(dir, 'manager', 'manager.db')));
  }

  /** Factory provisioning of one device; `extra` is merged into its configuration. */
  async provision(id: string, role: Role, extra: Partial<AgentConfig> = {}): Promise<FleetDevice> {
    const dir = join(this.dir, 'devices', id);
    mkdirSync(join(dir, 'link'), { recursive: true, mode: 0o700 });
    const mgmt = this.pki.device(id);
    const file = (name: string, data: string, mode = 0o644) => { const p = join(dir, 'link', name); writeFileSync(p, data); chmodSync(p, mode); return p; };
    const keyId = this.pki.commandKey.keyId;
    const config: AgentConfig = {
      deviceId: id, role,
      hal: { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'records') } },
      store: { kind: 'sqlite', path: join(dir, 'trust-store.db') },
      link: {
        url: this.broker.url, ca: file('ca.pem', this.pki.ca), cert: file('device.pem', mgmt.cert), key: file('device.key', mgmt.key, 0o600),
        commandKeys: { [keyId]: file('command-key.pem', this.pki.trustedCommandKeys().get(keyId)!.export({ type: 'spki', format: 'pem' }) as string) },
        stateIntervalMs: 200,
      },
      ...(role === 'server' ? { tls: { host: '127.0.0.1', port: await freePort() } } : {}),
      ...extra,
    };
    const hal = await openHal(config.hal);
    const store = new SqliteStateStore(join(dir, 'trust-store.db'));
    try {
      const key = await hal.keys.create('device', 'P-256');
      const csr = await buildCsr({ commonName: id, spki: key.spki, algorithm: key.algorithm, sign: (d) => hal.keys.sign('device', d) });
      const certificate = enrollFromCsr(this.db, this.ca, { deviceId: id, role, csrPem: csr, now: systemClock.now() });
      await Agent.provision({ deviceId: id, role, store, keys: hal.keys, clock: systemClock, logger }, { root: this.ca.activeRoot().cert, certificate, keyLabel: 'device' });
    } finally {
      await store.close();
      await hal.keys.close();
      await hal.records.close();
    }
    const configPath = join(dir, 'agent.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const dev: FleetDevice = { id, role, dir, configPath, config, running: null };
    this.devices.set(id, dev);
    return dev;
  }

  /** Change a device's configuration file (and the copy the fleet keeps); the running agent keeps what it started with. */
  editConfig(id: string, change: (c: AgentConfig) => AgentConfig): void {
    const dev = this.devices.get(id)!;
    dev.config = change(structuredClone(dev.config));
    writeFileSync(dev.configPath, JSON.stringify(dev.config, null, 2));
  }

  /** The probe target of a server-role device. */
  target(serverId: string): { host: string; port: number; serverId: string } {
    const tls = this.devices.get(serverId)!.config.tls!;
    return { host: tls.host, port: tls.port, serverId };
  }

  /** Run a device's agent in this process and wait until it is linked. */
  async start(id: string): Promise<RunningDevice> {
    const dev = this.devices.get(id)!;
    // From the file, as trustroll-agent run does: the health file records which configuration the agent runs.
    dev.running = await runDevice(loadAgentConfig(dev.configPath), { clock: systemClock, logger, configPath: dev.configPath });
    if (!(await dev.running.linked)) throw new Error(`${id} did not link to the broker`);
    const path = dev.running.healthFile;
    await until(() => { const v = readHealth(path, new Date()); return v.state === 'running' && !!v.health.link?.connected; }, 5_000, `${id}'s health file to show the link`);
    return dev.running;
  }

  /** Stop a device's agent (graceful: its health file records the stop). */
  async stop(id: string): Promise<void> {
    const dev = this.devices.get(id)!;
    await dev.running?.stop();
    dev.running = null;
  }

  /** Start the manager with a gate in front of its transport. */
  async startManager(): Promise<void> {
    const inner = new MqttManagerTransport({ url: this.broker.url, tls: { ca: this.pki.ca, ...this.pki.manager }, logger, reconnectPeriodMs: 100 });
    this.gate = new GatedTransport(inner);
    this.orchestrator = new Orchestrator({
      db: this.db, transport: this.gate, authority: this.ca, clock: systemClock, timers: systemTimers, logger,
      sign: commandSigner(this.pki.commandKey), verifyAck: ackVerifier(this.db),
      policy: { ackTimeoutMs: 120_000, sweepIntervalMs: 50, backoffBaseMs: 50, backoffMaxMs: 500 },
    });
    await inner.ready(10_000);
  }

  /**
   * Drive a rotation one batch at a time: release what the orchestrator
   * holds, wait until those steps are acknowledged, call `phase` with the
   * steps just applied; until the rotation completes.
   */
  async rotate(schedule: Schedule, phase: (steps: string[]) => Promise<void>): Promise<string> {
    const rotationId = await this.orchestrator!.start({ schedule });
    for (let round = 0; round < 20; round++) {
      await until(() => this.gate!.waiting > 0 || this.db.rotation(rotationId)!.status === 'complete', 10_000, 'next batch of commands');
      if (this.db.rotation(rotationId)!.status === 'complete') return rotationId;
      const batch = this.gate!.release();
      await until(() => batch.every((c) => this.db.steps(rotationId).some((s) => s.deviceId === c.deviceId && s.step === c.step && s.status === 'acked')), 10_000, `acks of ${batch.map((c) => `${c.deviceId}/${c.step}`).join(', ')}`);
      await phase([...new Set(batch.map((c) => c.step))]);
    }
    throw new Error('rotation did not complete in 20 batches');
  }

  /** Stop everything and remove the folder. */
  async close(): Promise<void> {
    for (const id of this.devices.keys()) await this.stop(id).catch(() => undefined);
    this.orchestrator?.close();
    await this.gate?.close().catch(() => undefined);
    await this.broker.close();
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Poll `cond` every 20 ms; throws naming `what` after `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
