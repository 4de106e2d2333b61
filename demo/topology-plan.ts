/**
 * Which devices of a demo or test fleet reach the broker and which go
 * through a relay (manager/fleet/topology.ts): `server-relay` puts every client
 * behind a printer, `client-relay` every printer behind a client, `mixed`
 * one of each (the rest direct), `direct` none.
 */
import type { Role } from '../protocol/steps.ts';

/** The topologies the demo can build. */
export const DEMO_TOPOLOGIES = ['direct', 'server-relay', 'client-relay', 'mixed'] as const;

/** A demo topology name. */
export type DemoTopology = (typeof DEMO_TOPOLOGIES)[number];

/** Relay of each relayed device (device id → relay id), spread round-robin over the relays. */
export function planRoutes(ids: readonly [string, Role][], topology: DemoTopology): Map<string, string> {
  const servers = ids.filter(([, r]) => r === 'server').map(([id]) => id);
  const clients = ids.filter(([, r]) => r === 'client').map(([id]) => id);
  const routes = new Map<string, string>();
  if (topology === 'server-relay') clients.forEach((c, i) => routes.set(c, servers[i % servers.length]!));
  if (topology === 'client-relay') servers.forEach((s, i) => routes.set(s, clients[i % clients.length]!));
  if (topology === 'mixed') {
    if (servers.length < 2 || clients.length < 2) throw new Error('a mixed topology needs at least 2 servers and 2 clients');
    routes.set(clients[0]!, servers[0]!);
    routes.set(servers[1]!, clients[1]!);
  }
  if (topology !== 'direct' && (servers.length === 0 || clients.length === 0)) throw new Error(`a ${topology} topology needs servers and clients`);
  return routes;
}

/** The devices each relay serves. */
export function relaysOf(routes: ReadonlyMap<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [id, relay] of routes) out.set(relay, [...(out.get(relay) ?? []), id]);
  return out;
}
