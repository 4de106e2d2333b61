/**
 * The fault harness's fleet: a real Mosquitto, the manager as `trustroll
 * rotate` processes, and device agents as separate processes (the real CLI
 * through agent-child.ts, which can die at a step boundary), each with its
 * own key, trust store (SQLite, or the HAL record store on an EEPROM image
 * file), mTLS service (servers) or continuous handshakes (clients). One
 * device reaches the broker through a TCP proxy the harness can cut.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Agent } from '../../../agent/agent.ts';
import type { AgentConfig } from '../../../agent/config.ts';
import { RecordStateStore } from '../../../agent/record-state-store.ts';
import { SqliteStateStore } from '../../../agent/sqlite-state-store.ts';
import { freePort, Mosquitto } from '../../../demo/mosquitto.ts';
import { fleetShape, serverPorts } from '../../../demo/device-provisioning.ts';
import { openHal } from '../../../hal/config.ts';
import type { EepromGeometry } from '../../../hal/eeprom/byte-device.ts';
import { CaAuthority } from '../../../manager/pki/ca-authority.ts';
import { enrollFromCsr } from '../../../manager/pki/enrollment.ts';
import { FleetDb } from '../../../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../../../manager/pki/management-pki.ts';
import { systemClock } from '../../../protocol/clock.ts';
import { buildCsr } from '../../../protocol/csr.ts';
import { createLogger } from '../../../protocol/log.ts';
import type { Role } from '../../../protocol/steps.ts';

const CHILD = fileURLToPath(new URL('./agent-child.ts', import.meta.url));
const MANAGER = fileURLToPath(new URL('../../../bin/trustroll.mjs', import.meta.url));

/** The smallest EEPROM geometry the README offers. */
export const EEPROM: EepromGeometry = { size: 65536, pageSize: 64, writeGranularity: 1 };

/** A device of the fleet. */
export interface FleetDevice {
  id: string;
  role: Role;
  storage: 'sqlite' | 'eeprom';
  dir: string;
  config: string;
  eepromFile: string | null;
  proc: ChildProcess | null;
  /** Times the process was not serving: [down, up] (up null while down). */
  down: [number, number | null][];
  /** Restart automatically after an exit the harness did not ask for. */
  keepAlive: boolean;
  /** Structured log lines (stderr) of every run. */
  log: { t: number; msg: string; fields: Record<string, unknown> }[];
}

/** A TCP proxy in front of the broker that can be cut (connections dropped, new ones refused). */
export class CutProxy {
  private readonly sockets = new Set<net.Socket>();
  private cut_ = false;
  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(target: number): Promise<CutProxy> {
    const port = await freePort();
    let proxy!: CutProxy;
    const server = net.createServer((c) => {
      if (proxy.cut_) return void c.destroy();
      const up = net.connect(target, '127.0.0.1');
      for (const s of [c, up]) {
        proxy.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => { proxy.sockets.delete(s); (s === c ? up : c).destroy(); });
      }
      c.pipe(up).pipe(c);
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    proxy = new CutProxy(server, port);
    return proxy;
  }

  /** Drop every connection and refuse new ones until `restore`. */
  cut(): void {
    this.cut_ = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.cut_ = false;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** The fleet: broker, manager data, devices. */
export class FaultFleet {
  readonly devices = new Map<string, FleetDevice>();
  manager: ChildProcess | null = null;
  managerLog = '';
  private closed = false;

  private constructor(readonly dir: string, readonly dataDir: string, readonly mgmtDir: string, readonly broker: Mosquitto, readonly proxy: CutProxy, readonly proxied: string) {}

  /** Provision `servers` + `clients` devices; the first of each role on EEPROM, the rest on SQLite; `proxied` reaches the broker through the proxy. */
  static async create(o: { servers: number; clients: number; proxied: string }): Promise<FaultFleet> {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-faults-'));
    const dataDir = join(dir, 'data');
    const mgmtDir = join(dir, 'mgmt');
    mkdirSync(dataDir, { recursive: true });
    const pki = await ManagementPki.create({ now: systemClock.now() });
    pki.save(mgmtDir);
    const ca = await CaAuthority.openOrInit(join(dataDir, 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll faults', now: systemClock.now() });
    const broker = await Mosquitto.start(pki);
    const proxy = await CutProxy.start(Number(new URL(broker.url).port));
    const fleet = new FaultFleet(dir, dataDir, mgmtDir, broker, proxy, o.proxied);
    const ids = fleetShape(o.servers, o.clients);
    const ports = await serverPorts(ids);
    const db = new FleetDb(join(dataDir, 'manager.db'));
    try {
      for (const [id, role] of ids) {
        const storage = id.endsWith('-1') ? 'eeprom' : 'sqlite';
        const url = id === o.proxied ? `mqtts://127.0.0.1:${proxy.port}` : broker.url;
        fleet.devices.set(id, await provision(dir, id, role, storage, { pki, ca, db, url, ports }));
      }
    } finally {
      db.close();
    }
    return fleet;
  }

  /** Start a device process (optionally with a planned step-boundary kill); resolves once it is linked. */
  async start(id: string, faultKill?: string): Promise<void> {
    const d = this.devices.get(id)!;
    const env = { ...process.env, TRUSTROLL_LOG: 'info', ...(faultKill ? { TRUSTROLL_FAULT_KILL: faultKill } : {}) };
    const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, 'run', '--config', d.config], { stdio: ['ignore', 'pipe', 'pipe'], env });
    d.proc = proc;
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      try {
        const { t, msg, ...fields } = JSON.parse(line) as { t: string; msg: string };
        if (msg === 'probe tally') return;
        d.log.push({ t: Date.parse(t), msg, fields });
      } catch {
        d.log.push({ t: Date.now(), msg: line.slice(0, 300), fields: {} });
      }
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${id} not ready in 60 s`)), 60_000);
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (line.includes('"event":"ready"')) {
          clearTimeout(timer);
          const last = d.down.at(-1);
          if (last && last[1] === null) last[1] = Date.now();
          resolve();
        }
      });
      proc.once('exit', () => { clearTimeout(timer); resolve(); });
    });
    proc.once('exit', () => {
      if (d.proc !== proc) return;
      d.proc = null;
      d.down.push([Date.now(), null]);
      if (d.keepAlive && !this.closed) setTimeout(() => { if (!d.proc && d.keepAlive && !this.closed) void this.start(id); }, 300);
    });
    await ready;
  }

  /** SIGKILL a device (power cut); `restart` false leaves it down. */
  async kill(id: string, restart = true): Promise<void> {
    const d = this.devices.get(id)!;
    d.keepAlive = restart;
    const p = d.proc;
    if (!p) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  /** Run `trustroll rotate` (a new rotation, or --resume); resolves with its exit code, null if killed. */
  rotate(resume: boolean, ackTimeoutMs: number): Promise<number | null> {
    const args = [MANAGER, 'rotate', '--data', this.dataDir, '--mgmt', this.mgmtDir, '--broker', this.broker.url, '--ack-timeout', String(ackTimeoutMs), '--max-attempts', '1000', '--json', ...(resume ? ['--resume'] : [])];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.manager = proc;
    proc.stderr!.on('data', (b: Buffer) => { this.managerLog = (this.managerLog + b.toString()).slice(-200_000); });
    proc.stdout!.resume();
    return new Promise((r) => proc.once('exit', (code) => { if (this.manager === proc) this.manager = null; r(code); }));
  }

  /** The manager database, read-only (next to a running manager). */
  readDb<T>(fn: (db: Database.Database) => T): T {
    const db = new Database(join(this.dataDir, 'manager.db'), { readonly: true, fileMustExist: true });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.manager?.kill('SIGKILL');
    for (const d of this.devices.values()) d.keepAlive = false;
    await Promise.all([...this.devices.values()].map(async (d) => {
      const p = d.proc;
      if (!p) return;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000).unref())]);
      if (p.exitCode === null) p.kill('SIGKILL');
    }));
    await this.proxy.close();
    await this.broker.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function provision(root: string, id: string, role: Role, storage: 'sqlite' | 'eeprom', c: { pki: ManagementPki; ca: CaAuthority; db: FleetDb; url: string; ports: Map<string, number> }): Promise<FleetDevice> {
  const dir = join(root, 'devices', id);
  mkdirSync(join(dir, 'link'), { recursive: true, mode: 0o700 });
  const mgmt = c.pki.device(id);
  const file = (name: string, data: string, mode = 0o644) => { const p = join(dir, 'link', name); writeFileSync(p, data); chmodSync(p, mode); return p; };
  const eepromFile = storage === 'eeprom' ? join(dir, 'eeprom.bin') : null;
  const config: AgentConfig = {
    deviceId: id, role,
    hal: eepromFile
      ? { keys: { backend: 'eeprom', protection: 'plain' }, records: { backend: 'eeprom' }, eeprom: { device: eepromFile, ...EEPROM } }
      : { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'records') } },
    store: eepromFile ? { kind: 'hal-records' } : { kind: 'sqlite', path: join(dir, 'trust-store.db') },
    link: {
      url: c.url, ca: file('ca.pem', c.pki.ca), cert: file('device.pem', mgmt.cert), key: file('device.key', mgmt.key, 0o600), stateIntervalMs: 1000,
      commandKeys: { [c.pki.commandKey.keyId]: file('command-key.pem', c.pki.trustedCommandKeys().get(c.pki.commandKey.keyId)!.export({ type: 'spki', format: 'pem' }) as string) },
    },
    ...(role === 'server'
      ? { tls: { host: '127.0.0.1', port: c.ports.get(id)! } }
      : { probe: { targets: [...c.ports].map(([serverId, port]) => ({ host: '127.0.0.1', port, serverId })), intervalMs: 50 } }),
  };
  const hal = await openHal(config.hal);
  const store = eepromFile ? new RecordStateStore(hal.records) : new SqliteStateStore(join(dir, 'trust-store.db'));
  try {
    const key = await hal.keys.create('device', 'P-256');
    const csr = await buildCsr({ commonName: id, spki: key.spki, algorithm: key.algorithm, sign: (d) => hal.keys.sign('device', d) });
    const certificate = enrollFromCsr(c.db, c.ca, { deviceId: id, role, csrPem: csr, now: systemClock.now() });
    await Agent.provision({ deviceId: id, role, store, keys: hal.keys, clock: systemClock, logger: createLogger({ level: 'error' }) }, { root: c.ca.activeRoot().cert, certificate, keyLabel: 'device' });
  } finally {
    await store.close();
    await hal.keys.close();
    if (!eepromFile) await hal.records.close();
  }
  const path = join(dir, 'agent.json');
  writeFileSync(path, JSON.stringify(config, null, 2));
  return { id, role, storage, dir, config: path, eepromFile, proc: null, down: [], keepAlive: true, log: [] };
}
