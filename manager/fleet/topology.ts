/**
 * Who can reach whom (PROTOCOL.md, second and fourth embodiments): the
 * manager reaches every device through the broker ("direct"), or reaches
 * some devices only through a peer they have mutual TLS with, their relay.
 * A printer relays for its clients (server-relay), a client for its
 * printers (client-relay); a fleet may mix both and direct devices. The
 * ordering and acknowledgements are the same in every topology; only the
 * topic a command is published on changes (protocol/topics.ts).
 */
import type { Role } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb } from './fleet-db.ts';
import { buildPeers } from './peering.ts';

/** The fleet's topology: direct (no relays), server-relay or client-relay (relays of one role), mixed (both). */
export type TopologyName = 'direct' | 'server-relay' | 'client-relay' | 'mixed';

/** One device's route. */
export interface DeviceRoute {
  id: string;
  role: Role;
  /** The relay that carries its commands, or null when the broker reaches it. */
  via: string | null;
  /** The devices it relays for. */
  relaysFor: string[];
}

/** The topology of the fleet: its label and every device's route. */
export interface Topology {
  name: TopologyName;
  devices: DeviceRoute[];
}

/**
 * Route `deviceId` through `via`, or directly (null). The relay must be
 * enrolled, be a peer of the device over mutual TLS (the other role, and
 * in the peering graph), and reach the broker itself (one hop); a device
 * that relays for others cannot itself be relayed.
 */
export function setRoute(db: FleetDb, deviceId: string, via: string | null): void {
  const devices = db.devices();
  const device = devices.find((d) => d.id === deviceId);
  if (!device) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${deviceId}`);
  if (via === null) return db.setDeviceVia(deviceId, null);
  const relay = devices.find((d) => d.id === via);
  const routes = db.routes();
  if (!relay) throw new ManagerError('E_ROUTE_INVALID', `relay ${via} is not enrolled; enrol it first`);
  if (via === deviceId) throw new ManagerError('E_ROUTE_INVALID', `device ${deviceId} cannot be its own relay`);
  if (relay.role === device.role) throw new ManagerError('E_ROUTE_INVALID', `${via} and ${deviceId} are both ${device.role}s: a relay carries commands over the mutual TLS between a printer and its client, so it must have the other role`);
  const peers = buildPeers(new Map(devices.map((d) => [d.id, d.role])), db.peering()).get(deviceId) ?? [];
  if (!peers.includes(via)) throw new ManagerError('E_ROUTE_INVALID', `${via} does not talk to ${deviceId} over mutual TLS (not in the peering graph), so it cannot relay for it`);
  if (routes.has(via)) throw new ManagerError('E_ROUTE_INVALID', `${via} is itself reached through ${routes.get(via)}; a relay must reach the broker itself (one hop)`);
  const behind = [...routes].filter(([, r]) => r === deviceId).map(([id]) => id);
  if (behind.length > 0) throw new ManagerError('E_ROUTE_INVALID', `${deviceId} relays for ${behind.join(', ')}; route those --direct first (one hop)`);
  db.setDeviceVia(deviceId, via);
}

/** The fleet's routes and its topology label. */
export function topology(db: FleetDb): Topology {
  const routes = db.routes();
  const devices: DeviceRoute[] = db.devices().map((d) => ({
    id: d.id, role: d.role, via: routes.get(d.id) ?? null,
    relaysFor: [...routes].filter(([, r]) => r === d.id).map(([id]) => id),
  }));
  const relayRoles = new Set(devices.filter((d) => d.relaysFor.length > 0).map((d) => d.role));
  let name: TopologyName = 'direct';
  if (relayRoles.size === 2) name = 'mixed';
  else if (relayRoles.has('server')) name = 'server-relay';
  else if (relayRoles.has('client')) name = 'client-relay';
  return { name, devices };
}

/** The topology for a terminal: its label and each relay with the devices behind it. */
export function describeTopology(t: Topology): string {
  const relays = t.devices.filter((d) => d.relaysFor.length > 0);
  if (relays.length === 0) return `topology: ${t.name} (the broker reaches all ${t.devices.length} devices)`;
  const direct = t.devices.filter((d) => d.via === null).length;
  return [`topology: ${t.name} (${direct} of ${t.devices.length} devices reach the broker)`, ...relays.map((r) => `  ${r.id} (${r.role}) relays for ${r.relaysFor.join(', ')}`)].join('\n');
}
