/**
 * Provision one device of a demo or test fleet on disk the way a factory
 * would: its agent configuration (file HAL, trust store, MQTT link
 * files of the management PKI), its key made in the HAL, a CSR enrolled
 * with the manager's CA, and the root and certificate provisioned. Returns
 * the path of its agent.json for `trustroll-agent run`.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../agent/agent.ts';
import { openStateStore, type AgentConfig } from '../agent/config.ts';
import { openHal } from '../hal/config.ts';
import type { KeyAlgorithm } from '../hal/key-store.ts';
import type { CaAuthority } from '../manager/pki/ca-authority.ts';
import { enrollFromCsr } from '../manager/pki/enrollment.ts';
import type { FleetDb } from '../manager/fleet/fleet-db.ts';
import type { ManagementPki } from '../manager/pki/management-pki.ts';
import { systemClock } from '../protocol/clock.ts';
import { buildCsr } from '../protocol/csr.ts';
import type { Logger } from '../protocol/log.ts';
import type { Role } from '../protocol/steps.ts';
import { freePort } from './mosquitto.ts';

/**
 * Provision device `id` under `root`/devices/`id`; `ports` maps server ids to
 * their mTLS ports. `keyAlgorithm`: the device key (default P-256);
 * `verifies`: what the device declares it can verify at enrolment; `via`:
 * its relay (route it on the manager with topology.ts setRoute once both
 * are enrolled); `relayFor`: the devices it relays for; `store`: where its
 * record lives (SQLite by default, or the HAL record store as in the image).
 */
export async function provisionDevice(root: string, id: string, role: Role, c: { pki: ManagementPki; ca: CaAuthority; db: FleetDb; brokerUrl: string; ports: Map<string, number>; naive: boolean; logger: Logger; keyAlgorithm?: KeyAlgorithm; verifies?: readonly string[]; via?: string; relayFor?: readonly string[]; relayIntervalMs?: number; store?: 'sqlite' | 'hal-records' }): Promise<string> {
  const dir = join(root, 'devices', id);
  mkdirSync(join(dir, 'link'), { recursive: true, mode: 0o700 });
  const mgmt = c.pki.device(id);
  const file = (name: string, data: string, mode = 0o644) => { const p = join(dir, 'link', name); writeFileSync(p, data); chmodSync(p, mode); return p; };
  const commandKeys = { [c.pki.commandKey.keyId]: file('command-key.pem', c.pki.trustedCommandKeys().get(c.pki.commandKey.keyId)!.export({ type: 'spki', format: 'pem' }) as string) };
  const interval = c.relayIntervalMs ?? 200;
  const config: AgentConfig = {
    deviceId: id, role,
    hal: { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'records') } },
    store: c.store === 'hal-records' ? { kind: 'hal-records' } : { kind: 'sqlite', path: join(dir, 'trust-store.db') },
    // A relayed device has no broker session (and no management certificate): its relay carries its commands.
    ...(c.via
      ? { via: { relay: c.via, ...(role === 'client' ? { host: '127.0.0.1', port: c.ports.get(c.via)! } : {}), pollMs: interval, commandKeys } }
      : { link: { url: c.brokerUrl, ca: file('ca.pem', c.pki.ca), cert: file('device.pem', mgmt.cert), key: file('device.key', mgmt.key, 0o600), commandKeys } }),
    ...(c.relayFor && c.relayFor.length > 0 ? { relay: { for: [...c.relayFor], intervalMs: interval } } : {}),
    ...(role === 'server'
      ? { tls: { host: '127.0.0.1', port: c.ports.get(id)! } }
      : { probe: { targets: [...c.ports].map(([serverId, port]) => ({ host: '127.0.0.1', port, serverId })), intervalMs: 25 } }),
    ...(c.naive ? { allowUnsafeSchedules: true } : {}),
  };
  const hal = await openHal(config.hal);
  const store = await openStateStore(config.store, hal.records);
  try {
    const key = await hal.keys.create('device', c.keyAlgorithm ?? 'P-256');
    const csr = await buildCsr({ commonName: id, spki: key.spki, algorithm: key.algorithm, sign: (d) => hal.keys.sign('device', d) });
    const certificate = enrollFromCsr(c.db, c.ca, { deviceId: id, role, csrPem: csr, now: systemClock.now(), verifies: c.verifies });
    await Agent.provision({ deviceId: id, role, store, keys: hal.keys, clock: systemClock, logger: c.logger }, {
      // Separate roots: the device verifies peers with the other side's root and keeps its issuer's root for its next certificate.
      root: c.ca.peerRoot(role).cert, certificate, keyLabel: 'device', ...(c.ca.separateRoots() ? { issuerRoot: c.ca.issuingRoot(role).cert } : {}),
    });
  } finally {
    await store.close();
    await hal.keys.close();
    if (config.store.kind === 'sqlite') await hal.records.close();
  }
  const path = join(dir, 'agent.json');
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/** Device ids and roles of a fleet: `printer-1..n` serve, `console-1..m` (or `clientName-1..m`) are their clients. */
export function fleetShape(servers: number, clients: number, clientName = 'console'): [string, Role][] {
  return [
    ...Array.from({ length: servers }, (_, i) => [`printer-${i + 1}`, 'server'] as [string, Role]),
    ...Array.from({ length: clients }, (_, i) => [`${clientName}-${i + 1}`, 'client'] as [string, Role]),
  ];
}

/** A free loopback port for each server's mutual-TLS service. */
export async function serverPorts(ids: readonly [string, Role][]): Promise<Map<string, number>> {
  const ports = new Map<string, number>();
  for (const [id, role] of ids) if (role === 'server') ports.set(id, await freePort());
  return ports;
}
