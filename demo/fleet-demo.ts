/**
 * The main job (`trustroll demo`): a broker (the embedded one, or a real
 * Mosquitto), the manager, and N server-role and M client-role devices,
 * each a separate `trustroll-agent run` process with its own HAL key files,
 * SQLite trust store and MQTT session. Client devices handshake with every
 * server over real mutual TLS for the whole run while the manager rotates
 * the root; at each step boundary OpenSSL and GnuTLS also handshake between
 * the devices' identities. The result says whether any connection failed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaAuthority } from '../manager/pki/ca-authority.ts';
import type { CaKeyAlgorithm } from '../manager/ca/keys.ts';
import { rootAlgorithm } from '../manager/rotation/algorithm-plan.ts';
import { X509Certificate } from 'node:crypto';
import { EmbeddedBroker } from '../manager/broker/embedded-broker.ts';
import { FleetDb } from '../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../manager/pki/management-pki.ts';
import type { MqttManagerTransport } from '../manager/transport/mqtt-transport.ts';
import { buildOrchestrator, mqttTransport } from '../manager/manager.ts';
import type { Orchestrator } from '../manager/rotation/orchestrator.ts';
import { systemClock } from '../protocol/clock.ts';
import { createLogger, type Logger } from '../protocol/log.ts';
import { NAIVE, SCHEDULES, type Role } from '../protocol/steps.ts';
import { CrossStack } from './cross-stack.ts';
import { captureFromDisk, keyPemOf } from './device-files.ts';
import { paced } from './paced-transport.ts';
import { startFleetProcesses, stopAll, type DeviceProc } from './device-process.ts';
import { fleetShape, provisionDevice, serverPorts } from './device-provisioning.ts';
import { Mosquitto } from './mosquitto.ts';
import { setRoute } from '../manager/fleet/topology.ts';
import { planRoutes, relaysOf, type DemoTopology } from './topology-plan.ts';

/** Demo settings. */
export interface FleetDemoOptions {
  servers: number;
  clients: number;
  schedule: string;
  naive: boolean;
  /**
   * 'embedded' (aedes, default), 'mosquitto' (a real Mosquitto started for
   * the demo), or the mqtts:// URL of a running broker configured with the
   * management PKI in `mgmtDir` (see `trustroll mgmt init`).
   */
  broker: string;
  mgmtDir?: string;
  /** Hold each acknowledgement this long before the manager acts on it, so traffic flows in every intermediate state. */
  paceMs: number;
  /** Keep the devices handshaking after the rotation until this many connections were made in all. */
  minHandshakes: number;
  /** The fleet root's algorithm (default P-256); RSA fleets get RSA-2048 device keys, the legacy printers' case. The rotation keeps it. */
  algorithm?: CaKeyAlgorithm;
  /** The new root's subject (default: the old root's, byte for byte). */
  newSubject?: string;
  /** Who reaches whom: every device the broker (default), or some through a relay (demo/topology-plan.ts). */
  topology?: DemoTopology;
  /** Keep the folder (device configs, stores, logs) for inspection. */
  keep?: boolean;
  logger?: Logger;
}

/** The demo's JSON result. */
export interface FleetDemoResult {
  topology: { name: DemoTopology; relayed: Record<string, string> };
  rotation: { id: string; status: string; schedule: string; devices: number; durationMs: number; error: string | null; roots: { from: { algorithm: string; subject: string }; to: { algorithm: string; subject: string } }; steps: { step: string; role: Role; acked: number; of: number; lastAckMs: number | null }[] };
  handshakes: { attempted: number; failed: number; fallbacks: number; failures: string[] };
  crossStack: { boundaries: number; openssl: { attempted: number; failed: number }; gnutls: { attempted: number; failed: number }; failures: string[] };
  broker: string;
  dir: string | null;
}

/** Run the demo end to end and clean up. */
export async function runFleetDemo(o: FleetDemoOptions): Promise<FleetDemoResult> {
  const dir = mkdtempSync(join(tmpdir(), 'trustroll-demo-'));
  const logFile = join(dir, 'manager.log');
  const lines: string[] = [];
  const logger = o.logger ?? createLogger({ level: 'info', sink: (l) => lines.push(l) });
  const now = systemClock.now();
  const external = o.broker.startsWith('mqtts://');
  if (!external && o.broker !== 'embedded' && o.broker !== 'mosquitto') throw new Error(`--broker must be embedded, mosquitto or an mqtts:// URL, got "${o.broker}"`);
  if (external && !o.mgmtDir) throw new Error('an external broker needs --mgmt <dir>: the management PKI the broker was configured with (trustroll mgmt init)');
  const pki = external ? ManagementPki.load(o.mgmtDir!, now) : await ManagementPki.create({ now });
  const broker = external
    ? { url: o.broker, close: async () => {} }
    : o.broker === 'mosquitto' ? await Mosquitto.start(pki) : await EmbeddedBroker.start({ ca: pki.ca, ...pki.broker, logger });
  const ca = await CaAuthority.openOrInit(join(dir, 'manager', 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll demo', now, policy: o.algorithm ? { algorithm: o.algorithm } : {} });
  const keyAlgorithm = o.algorithm?.startsWith('RSA') ? 'RSA-2048' : 'P-256';
  const db = new FleetDb(join(dir, 'manager', 'manager.db'));
  const procs: DeviceProc[] = [];
  let transport: MqttManagerTransport | null = null;
  let orchestrator: Orchestrator | null = null;
  try {
    const ids = fleetShape(o.servers, o.clients, 'mgmt-client');
    const ports = await serverPorts(ids);
    const configs = new Map<string, string>();
    const topology = o.topology ?? 'direct';
    const routes = planRoutes(ids, topology);
    const relays = relaysOf(routes);
    for (const [id, role] of ids) configs.set(id, await provisionDevice(dir, id, role, { pki, ca, db, brokerUrl: broker.url, ports, naive: o.naive, logger, keyAlgorithm, via: routes.get(id), relayFor: relays.get(id) }));
    for (const [id, relay] of routes) setRoute(db, id, relay);
    transport = mqttTransport({ url: broker.url, pki, logger, reconnectPeriodMs: 200, db });
    let resolveEnd!: () => void;
    const ended = new Promise<void>((r) => (resolveEnd = r));
    const ackedBy = new Map<string, number>();
    const boundaries: string[] = [];
    let onBoundary: (step: string) => void = () => {};
    orchestrator = buildOrchestrator({
      db, transport: paced(transport, o.paceMs), authority: ca, logger, pki, policy: { ackTimeoutMs: 15_000, sweepIntervalMs: 200 },
      events: {
        complete: () => resolveEnd(), failed: () => resolveEnd(),
        acked: (row) => {
          const n = (ackedBy.get(row.step) ?? 0) + 1;
          ackedBy.set(row.step, n);
          const role = (o.naive ? NAIVE : SCHEDULES[o.schedule]!).steps.find((s) => s.id === row.step)!.role;
          if (n === ids.filter(([, r]) => r === role).length) onBoundary(row.step);
        },
      },
    });
    await transport.ready(15_000);
    procs.push(...await startFleetProcesses(ids, routes, ports, dir, configs));

    const cross = new CrossStack({ keyPem: async (id, label) => keyPemOf(join(dir, 'devices', id), label), logger });
    const xs = { boundaries: 0, openssl: { attempted: 0, failed: 0 }, gnutls: { attempted: 0, failed: 0 }, failures: [] as string[] };
    let crossChain: Promise<void> = Promise.resolve();
    const crossCheck = (label: string) => {
      const captured = captureFromDisk(dir, ids);
      crossChain = crossChain.then(async () => {
        const r = await cross.check(await captured, label);
        xs.boundaries++;
        for (const stack of ['openssl', 'gnutls'] as const) {
          xs[stack].attempted += r[stack].attempted;
          xs[stack].failed += r[stack].failed;
          xs.failures.push(...r[stack].failures.slice(0, 3).map((f) => `${stack} at ${label}: ${f}`));
        }
      });
    };
    onBoundary = (step) => { boundaries.push(step); crossCheck(`after ${step}`); };
    crossCheck('before rotation');
    await new Promise((r) => setTimeout(r, Math.max(300, o.paceMs)));
    const schedule = o.naive ? NAIVE : SCHEDULES[o.schedule];
    if (!schedule) throw new Error(`unknown schedule "${o.schedule}"`);
    const oldRoot = ca.activeRoot().cert;
    const start = performance.now();
    const rotationId = await orchestrator.start({ schedule, unsafe: o.naive, newRoot: { subject: o.newSubject } });
    await Promise.race([ended, new Promise((_, rej) => setTimeout(() => rej(new Error('rotation did not end within 10 minutes')), 600_000).unref())]);
    const durationMs = Math.round(performance.now() - start);
    const enough = Date.now() + 60_000;
    do await new Promise((r) => setTimeout(r, Math.max(300, o.paceMs)));
    while (procs.reduce((n, p) => n + p.attempted, 0) < o.minHandshakes && Date.now() < enough);
    await crossChain;
    await cross.close();
    const tallies = await stopAll(procs);
    const rotation = db.rotation(rotationId)!;
    const rows = db.steps(rotationId);
    const t0 = Date.parse(rotation.createdAt);
    return {
      topology: { name: topology, relayed: Object.fromEntries(routes) },
      rotation: {
        id: rotation.id, status: rotation.status, schedule: schedule.name, devices: ids.length, durationMs, error: rotation.error,
        roots: { from: rootFacts(oldRoot), to: rootFacts(rotation.newRoot) },
        steps: schedule.steps.map((s) => {
          const mine = rows.filter((r) => r.step === s.id);
          const acked = mine.filter((r) => r.status === 'acked').map((r) => Date.parse(r.ackedAt!));
          return { step: s.id, role: s.role, acked: acked.length, of: mine.length, lastAckMs: acked.length ? Math.max(...acked) - t0 : null };
        }),
      },
      handshakes: {
        attempted: tallies.reduce((n, t) => n + t.attempted, 0),
        failed: tallies.reduce((n, t) => n + t.failed, 0),
        fallbacks: tallies.reduce((n, t) => n + t.fallbacks, 0),
        failures: tallies.flatMap((t) => t.failures).slice(0, 10),
      },
      crossStack: xs,
      broker: external ? `external ${broker.url}` : `${o.broker} ${broker.url}`,
      dir: o.keep ? dir : null,
    };
  } finally {
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    orchestrator?.close();
    await transport?.close().catch(() => undefined);
    await broker.close();
    db.close();
    writeFileSync(logFile, lines.join('\n') + '\n');
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** A root's key algorithm and subject, for the result. */
function rootFacts(pem: string): { algorithm: string; subject: string } {
  return { algorithm: rootAlgorithm(pem), subject: new X509Certificate(pem).subject.split('\n').join(',') };
}

/** A human summary of a demo result. */
export function describeFleetDemo(r: FleetDemoResult): string {
  const lines = [
    `trustroll demo: rotation ${r.rotation.id} ${r.rotation.status.toUpperCase()} in ${r.rotation.durationMs} ms (${r.rotation.schedule}, ${r.rotation.devices} device processes, broker ${r.broker})`,
    `  topology: ${r.topology.name}${Object.keys(r.topology.relayed).length ? ` (${Object.entries(r.topology.relayed).map(([id, relay]) => `${id} via ${relay}`).join(', ')})` : ''}`,
    `  root: ${r.rotation.roots.from.algorithm} "${r.rotation.roots.from.subject}" -> ${r.rotation.roots.to.algorithm} "${r.rotation.roots.to.subject}"`,
    ...r.rotation.steps.map((s) => `  ${s.step} (${s.role}): ${s.acked}/${s.of} acknowledged${s.lastAckMs === null ? '' : `, last at +${s.lastAckMs} ms`}`),
    `  mutual-TLS connections during the run: ${r.handshakes.attempted} attempted, ${r.handshakes.failed} failed, ${r.handshakes.fallbacks} needed the old client certificate`,
    `  cross-stack at ${r.crossStack.boundaries} step boundaries: openssl ${r.crossStack.openssl.attempted} handshakes, ${r.crossStack.openssl.failed} failed; gnutls ${r.crossStack.gnutls.attempted}, ${r.crossStack.gnutls.failed} failed`,
  ];
  if (r.rotation.error) lines.push(`  stopped: ${r.rotation.error}`);
  for (const f of [...r.handshakes.failures, ...r.crossStack.failures].slice(0, 5)) lines.push(`  failure: ${f}`);
  if (r.dir) lines.push(`  files kept in ${r.dir}`);
  return lines.join('\n');
}
