/**
 * A real fleet run by `trustroll serve` for the service, API, metrics and
 * dashboard tests: a Mosquitto (or the embedded broker) on a free loopback
 * port, device processes (`trustroll-agent run`: servers with mTLS
 * services, clients probing them), the management PKI and CA on disk, and
 * the manager as a `trustroll serve` child process listening on a free
 * port. Operators `admin` and `viewer` have certificates; `api()` calls the
 * API as either, with a bearer token, or anonymously.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startDevice, type DeviceProc } from '../../demo/device-process.ts';
import { fleetShape, provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';
import { freePort, Mosquitto } from '../../demo/mosquitto.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import type { CaKeyAlgorithm } from '../../manager/ca/keys.ts';
import type { KeyAlgorithm } from '../../hal/key-store.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { OperatorPki } from '../../manager/pki/operator-pki.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Role } from '../../protocol/steps.ts';

const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));

/** Who an API call authenticates as. */
export type Caller = 'admin' | 'viewer' | 'token' | 'none';

/** An API answer. */
export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  text: string;
}

/** Fleet shape. */
export interface ServiceFleetOptions {
  servers: number;
  clients: number;
  /** Server ids are printer-N, client ids console-N. */
  broker?: 'mosquitto' | 'embedded';
  ackTimeoutMs?: number;
  maxAttempts?: number;
  /** More `trustroll serve` options (e.g. the scheduler's). */
  serveArgs?: readonly string[];
  /** The fleet root's algorithm (default P-256). */
  caAlgorithm?: CaKeyAlgorithm;
  /** Every device key's algorithm (default P-256). */
  deviceAlgorithm?: KeyAlgorithm;
  /** What devices declare they can verify at enrolment, by id (default: nothing declared). */
  verifies?: Readonly<Record<string, readonly string[]>>;
  /** Separate client and server roots (the server root keeps the fleet root's subject). */
  separateRoots?: boolean;
}

/** A running service fleet; `close()` stops every process and removes the folder. */
export class ServiceFleet {
  readonly devices = new Map<string, DeviceProc>();
  private serve: ChildProcess | null = null;
  /** Lines the service printed (structured logs). */
  readonly serviceLog: string[] = [];
  url = '';
  token = '';

  private constructor(
    readonly dir: string,
    readonly dataDir: string,
    readonly mgmtDir: string,
    readonly broker: Mosquitto | null,
    readonly brokerUrl: string,
    readonly configs: Map<string, { role: Role; config: string }>,
    readonly operators: { ca: string; admin: { cert: string; key: string }; viewer: { cert: string; key: string } },
    private readonly o: ServiceFleetOptions,
  ) {}

  /** Provision the fleet and start the broker, the devices and the service. */
  static async create(o: ServiceFleetOptions): Promise<ServiceFleet> {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-service-'));
    const dataDir = join(dir, 'data');
    const mgmtDir = join(dir, 'mgmt');
    mkdirSync(dataDir, { recursive: true });
    const pki = await ManagementPki.create({ now: systemClock.now() });
    pki.save(mgmtDir);
    const logger = createLogger({ level: 'warn', sink: () => undefined });
    const ca = await CaAuthority.openOrInit(join(dataDir, 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll service test', now: systemClock.now(), policy: o.caAlgorithm ? { algorithm: o.caAlgorithm } : {}, ...(o.separateRoots ? { clientSubject: 'CN=Printer Client Root,O=trustroll service test' } : {}) });
    const embeddedPort = o.broker === 'embedded' ? await freePort() : 0;
    const broker = o.broker === 'embedded' ? null : await Mosquitto.start(pki, { sysIntervalS: 1 });
    const brokerUrl = broker ? broker.url : `mqtts://127.0.0.1:${embeddedPort}`;
    const ids = fleetShape(o.servers, o.clients);
    const ports = await serverPorts(ids);
    const db = new FleetDb(join(dataDir, 'manager.db'));
    const configs = new Map<string, { role: Role; config: string }>();
    try {
      for (const [id, role] of ids) configs.set(id, { role, config: await provisionDevice(dir, id, role, { pki, ca, db, brokerUrl, ports, naive: false, logger, keyAlgorithm: o.deviceAlgorithm, verifies: o.verifies?.[id] }) });
    } finally {
      db.close();
    }
    const ops = await OperatorPki.openOrCreate(mgmtDir, systemClock.now());
    const admin = await ops.issueOperator({ name: 'alice', role: 'admin', now: systemClock.now() });
    const viewer = await ops.issueOperator({ name: 'bob', role: 'read', now: systemClock.now() });
    for (const [name, c] of [['alice', admin], ['bob', viewer]] as const) {
      writeFileSync(join(mgmtDir, `${name}.pem`), c.cert);
      writeFileSync(join(mgmtDir, `${name}.key`), c.key, { mode: 0o600 });
    }
    const fleet = new ServiceFleet(dir, dataDir, mgmtDir, broker, brokerUrl, configs, { ca: ops.ca, admin, viewer }, o);
    const tok = spawnSync(process.execPath, [MANAGER_BIN, 'token', 'create', '--data', dataDir, '--name', 'scraper', '--role', 'read'], { encoding: 'utf8' });
    if (tok.status !== 0) throw new Error(`token create failed: ${tok.stderr}`);
    fleet.token = tok.stdout.trim();
    if (!broker) await fleet.startService(embeddedPort);
    // Servers first: a client's first handshake must find its servers listening.
    for (const wanted of ['server', 'client'] as const) {
      const group = [...configs].filter(([, c]) => c.role === wanted).map(([id, c]) => fleet.startDevice(id, c));
      await Promise.all(group.map((p) => p.ready));
    }
    if (broker) await fleet.startService();
    return fleet;
  }

  private startDevice(id: string, c: { role: Role; config: string }): DeviceProc {
    const p = startDevice(id, c.role, join(this.dir, 'devices', id), c.config);
    this.devices.set(id, p);
    return p;
  }

  /** Start (or restart) `trustroll serve`; resolves once it listens. */
  async startService(embeddedPort?: number): Promise<void> {
    const args = [MANAGER_BIN, 'serve', '--data', this.dataDir, '--mgmt', this.mgmtDir, '--listen', '127.0.0.1:0', '--sys-interval', '1',
      '--ack-timeout', String(this.o.ackTimeoutMs ?? 3000), '--max-attempts', String(this.o.maxAttempts ?? 1000), '--log-level', 'info',
      ...(this.broker ? ['--broker', this.brokerUrl] : ['--broker', 'embedded', '--embedded-port', String(embeddedPort ?? new URL(this.brokerUrl).port)]),
      ...(this.o.serveArgs ?? [])];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.serve = proc;
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`trustroll serve not ready in 60 s: ${stderr}`)), 60_000);
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        this.serviceLog.push(line);
        if (this.serviceLog.length > 5000) this.serviceLog.splice(0, 1000);
        if (line.includes('"msg":"ready"')) {
          clearTimeout(timer);
          this.url = (JSON.parse(line) as { url: string }).url;
          resolve();
        }
      });
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`trustroll serve exited ${code}: ${stderr}`)); });
    });
  }

  /** Stop the service with SIGTERM and wait for its exit code. */
  async stopService(): Promise<number | null> {
    const proc = this.serve;
    if (!proc || proc.exitCode !== null) return proc?.exitCode ?? null;
    proc.kill('SIGTERM');
    return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  /** Take a device process down (SIGKILL: the broker publishes its last will at once). */
  async killDevice(id: string): Promise<void> {
    const p = this.devices.get(id)!;
    p.proc.kill('SIGKILL');
    await new Promise((r) => (p.proc.exitCode !== null || p.proc.signalCode !== null ? r(undefined) : p.proc.once('exit', r)));
  }

  /** Start a device that was taken down. */
  async restartDevice(id: string): Promise<void> {
    await this.startDevice(id, this.configs.get(id)!).ready;
  }

  /** The client certificate and key of an operator, for a browser context or an HTTPS call. */
  operator(who: 'admin' | 'viewer'): { cert: string; key: string } {
    return who === 'admin' ? this.operators.admin : this.operators.viewer;
  }

  /** Call the API. */
  api<T = unknown>(path: string, o: { as?: Caller; method?: 'GET' | 'POST'; body?: unknown } = {}): Promise<ApiAnswer<T>> {
    const as = o.as ?? 'admin';
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const url = new URL(path, this.url);
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: o.method ?? (payload ? 'POST' : 'GET'), ca: this.operators.ca,
        ...(as === 'admin' || as === 'viewer' ? this.operator(as) : {}),
        headers: { ...(as === 'token' ? { authorization: `Bearer ${this.token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch { /* text bodies (metrics) */ }
          resolve({ status: res.statusCode ?? 0, body: body as T, text });
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Poll `fn` until it returns a truthy value. */
  async until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The service's data folder file contents (e.g. service.json). */
  read(name: string): string {
    return readFileSync(join(this.dataDir, name), 'utf8');
  }

  /** Stop the service, every device and the broker; remove the folder. */
  async close(): Promise<void> {
    await this.stopService().catch(() => undefined);
    const procs = [...this.devices.values()];
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGTERM');
    await Promise.all(procs.map((p) => Promise.race([p.stopped, new Promise((r) => setTimeout(r, 10_000).unref())])));
    await this.broker?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
