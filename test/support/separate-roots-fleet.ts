/**
 * A separate-roots fleet for the end-to-end test: a real Mosquitto, the
 * manager (CA with a client root and a server root, orchestrator over MQTT
 * with signed commands), and every device a `trustroll-agent run` process
 * with file HAL keys and a SQLite trust store. Clients handshake with every
 * server over mutual TLS for the whole run; at every step boundary the
 * devices' stored state is read from disk, handshaked with OpenSSL and
 * GnuTLS, and kept so the test can check whose certificates changed.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { FleetDb, type RotationRow } from '../../manager/fleet/fleet-db.ts';
import { AuditLog } from '../../manager/audit/audit-log.ts';
import { verifyAudit, type AuditReport } from '../../manager/audit/audit-check.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { buildOrchestrator, mqttTransport } from '../../manager/manager.ts';
import type { MqttManagerTransport } from '../../manager/transport/mqtt-transport.ts';
import type { Orchestrator } from '../../manager/rotation/orchestrator.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import { fingerprint } from '../../protocol/pem.ts';
import { SIDE_SCHEDULES, type Role, type RootSide, type Schedule } from '../../protocol/steps.ts';
import { CrossStack, type CrossStackDevice } from '../../demo/cross-stack.ts';
import { captureFromDisk, keyPemOf } from '../../demo/device-files.ts';
import { startFleetProcesses, stopAll, type DeviceProc, type Tally } from '../../demo/device-process.ts';
import { paced } from '../../demo/paced-transport.ts';
import { fleetShape, provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';
import { planRoutes, relaysOf, type DemoTopology } from '../../demo/topology-plan.ts';
import { setRoute } from '../../manager/fleet/topology.ts';
import { Mosquitto } from '../../demo/mosquitto.ts';

const fp = (pem: string) => fingerprint(new X509Certificate(pem));

/** What one root rotation showed. */
export interface SideRun {
  rotation: RotationRow;
  ms: number;
  /** Client handshakes made and failed while it ran (from the devices' own tallies). */
  handshakes: { attempted: number; failed: number; fallbacks: number };
  /** Boundaries checked: before the rotation and after every step. */
  boundaries: string[];
  cross: { openssl: { attempted: number; failed: number }; gnutls: { attempted: number; failed: number }; failures: string[] };
  /** Per device: fingerprints of every certificate it presented at any boundary, in first-seen order. */
  presented: Map<string, string[]>;
  /** Per device: fingerprints of the roots it verifies peers with, at the last boundary. */
  anchorsAfter: Map<string, string[]>;
}

/** The running fleet. */
export class SeparateRootsFleet {
  private readonly tallies = new Map<string, Omit<Tally, 'failures'>>();
  private onAcked: (step: string, role: Role) => void = () => {};
  private onEnd: (r: RotationRow) => void = () => {};

  private constructor(
    readonly dir: string,
    readonly ca: CaAuthority,
    readonly db: FleetDb,
    private readonly broker: Mosquitto,
    readonly ids: [string, Role][],
    private readonly procs: DeviceProc[],
    private transport: MqttManagerTransport | null,
    private orchestrator: Orchestrator | null,
    private readonly cross: CrossStack,
    private readonly audit: AuditLog,
  ) {}

  /** The manager's audit trail, checked: chain intact and every send after its prerequisites (from the log alone). */
  verifyAudit(): AuditReport {
    return verifyAudit(this.audit.all());
  }

  /** Broker, CA with both roots, manager and every device process (servers first), linked and handshaking. */
  static async start(o: { servers: number; clients: number; paceMs: number; topology?: DemoTopology }): Promise<SeparateRootsFleet> {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-separate-roots-'));
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', sink: (l) => { lines.push(l); if (lines.length > 2000) lines.splice(0, 1000); } });
    const now = systemClock.now();
    const pki = await ManagementPki.create({ now });
    const broker = await Mosquitto.start(pki);
    const ca = await CaAuthority.openOrInit(join(dir, 'manager', 'ca'), { subject: 'CN=Printer Server Root,O=trustroll test', clientSubject: 'CN=Printer Client Root,O=trustroll test', now });
    const db = new FleetDb(join(dir, 'manager', 'manager.db'));
    const ids = fleetShape(o.servers, o.clients, 'mgmt-client');
    const ports = await serverPorts(ids);
    const configs = new Map<string, string>();
    // A relay topology puts some devices behind a peer (demo/topology-plan.ts): the method is the same.
    const routes = planRoutes(ids, o.topology ?? 'direct');
    const relays = relaysOf(routes);
    for (const [id, role] of ids) configs.set(id, await provisionDevice(dir, id, role, { pki, ca, db, brokerUrl: broker.url, ports, naive: false, logger, via: routes.get(id), relayFor: relays.get(id) }));
    for (const [id, relay] of routes) setRoute(db, id, relay);
    const transport = mqttTransport({ url: broker.url, pki, logger, reconnectPeriodMs: 200, db });
    const cross = new CrossStack({ keyPem: (id, label) => keyPemOf(join(dir, 'devices', id), label), logger });
    const audit = new AuditLog(db);
    const fleet = new SeparateRootsFleet(dir, ca, db, broker, ids, [], transport, null, cross, audit);
    fleet.orchestrator = buildOrchestrator({
      db, audit, transport: paced(transport, o.paceMs), authority: ca, logger, pki, policy: { ackTimeoutMs: 15_000, sweepIntervalMs: 200 },
      events: {
        acked: (row) => fleet.onAcked(row.step, db.device(row.deviceId).role),
        complete: (r) => fleet.onEnd(r), failed: (r) => fleet.onEnd(r),
      },
    });
    await transport.ready(15_000);
    await startFleetProcesses(ids, routes, ports, dir, configs, (p) => {
      fleet.procs.push(p);
      fleet.followTally(p);
    });
    return fleet;
  }

  /** Freeze (SIGSTOP) or thaw (SIGCONT) a device process: a device that is slow to take its steps. */
  freeze(id: string, frozen: boolean): void {
    this.procs.find((p) => p.id === id)!.proc.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Keep each client's latest handshake tally (the agent prints one every 500 ms while it moves). */
  private followTally(p: DeviceProc): void {
    createInterface({ input: p.proc.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { event?: string; probe?: Tally };
        if (msg.event === 'tally' && msg.probe) this.tallies.set(p.id, { attempted: msg.probe.attempted, failed: msg.probe.failed, fallbacks: msg.probe.fallbacks });
      } catch { /* not an event line */ }
    });
  }

  private tallySum(): { attempted: number; failed: number; fallbacks: number } {
    const t = { attempted: 0, failed: 0, fallbacks: 0 };
    for (const v of this.tallies.values()) { t.attempted += v.attempted; t.failed += v.failed; t.fallbacks += v.fallbacks; }
    return t;
  }

  /** The devices' roots and identities as stored on disk now (read-only). */
  private capture(): Promise<CrossStackDevice[]> {
    return captureFromDisk(this.dir, this.ids);
  }

  /**
   * Rotate one root with its own schedule (or `schedule`, a variant for a
   * negative control, with `unsafe`) while the traffic runs; check every
   * step boundary with OpenSSL and GnuTLS.
   */
  async rotate(side: RootSide, minHandshakes: number, opts: { schedule?: Schedule; unsafe?: boolean } = {}): Promise<SideRun> {
    const schedule = opts.schedule ?? SIDE_SCHEDULES[side];
    const count = (role: Role) => this.ids.filter(([, r]) => r === role).length;
    const acked = new Map<string, number>();
    const run: SideRun = {
      rotation: null as unknown as RotationRow, ms: 0, handshakes: { attempted: 0, failed: 0, fallbacks: 0 }, boundaries: [],
      cross: { openssl: { attempted: 0, failed: 0 }, gnutls: { attempted: 0, failed: 0 }, failures: [] }, presented: new Map(), anchorsAfter: new Map(),
    };
    let chain: Promise<void> = Promise.resolve();
    const boundary = (label: string) => {
      const captured = this.capture();
      chain = chain.then(async () => {
        const devices = await captured;
        run.boundaries.push(label);
        for (const d of devices) {
          const seen = run.presented.get(d.id) ?? [];
          for (const i of d.identities) if (!seen.includes(fp(i.cert))) seen.push(fp(i.cert));
          run.presented.set(d.id, seen);
          run.anchorsAfter.set(d.id, d.anchors.map(fp));
        }
        const r = await this.cross.check(devices, `${side} root: ${label}`);
        for (const stack of ['openssl', 'gnutls'] as const) {
          run.cross[stack].attempted += r[stack].attempted;
          run.cross[stack].failed += r[stack].failed;
          run.cross.failures.push(...r[stack].failures.slice(0, 3).map((f) => `${stack} at ${label}: ${f}`));
        }
      });
    };
    this.onAcked = (step, role) => {
      const n = (acked.get(step) ?? 0) + 1;
      acked.set(step, n);
      if (n === count(role)) boundary(`after ${step}`);
    };
    const ended = new Promise<RotationRow>((resolve) => { this.onEnd = resolve; });
    boundary('before');
    const before = this.tallySum();
    const t0 = performance.now();
    await this.orchestrator!.start({ schedule, unsafe: opts.unsafe });
    const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${schedule.name} did not end within 120 s`)), 120_000).unref());
    run.rotation = await Promise.race([ended, timeout]);
    run.ms = Math.round(performance.now() - t0);
    // Keep the traffic going over the final state, then read the tallies (printed every 500 ms while they move).
    const until = Date.now() + 30_000;
    do await new Promise((r) => setTimeout(r, 600));
    while (this.tallySum().attempted - before.attempted < minHandshakes && Date.now() < until);
    await chain;
    const after = this.tallySum();
    run.handshakes = { attempted: after.attempted - before.attempted, failed: after.failed - before.failed, fallbacks: after.fallbacks - before.fallbacks };
    return run;
  }

  /** Stop the devices (clients first, with their final tallies), the manager and the broker; remove every file. */
  async close(): Promise<Tally[]> {
    let tallies: Tally[] = [];
    try {
      await this.cross.close();
      tallies = await stopAll(this.procs);
    } finally {
      for (const p of this.procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
      this.orchestrator?.close();
      await this.transport?.close().catch(() => undefined);
      await this.broker.close();
      this.db.close();
      rmSync(this.dir, { recursive: true, force: true });
    }
    return tallies;
  }
}
