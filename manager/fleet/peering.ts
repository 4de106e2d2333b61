/**
 * Who talks to whom over mTLS. "The client" in PROTOCOL.md means every
 * client that talks to that server, and vice versa; by default every client
 * talks to every server.
 */
import type { Role } from '../../protocol/steps.ts';

/** Peers of every device: servers map to their clients, clients to their servers. */
export function buildPeers(roles: ReadonlyMap<string, Role>, edges: readonly { server: string; client: string }[]): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  if (edges.length === 0) {
    const servers = [...roles].filter(([, r]) => r === 'server').map(([id]) => id);
    const clients = [...roles].filter(([, r]) => r === 'client').map(([id]) => id);
    for (const [id, role] of roles) out.set(id, role === 'server' ? clients : servers);
    return out;
  }
  const lists = new Map<string, string[]>();
  const add = (a: string, b: string) => {
    if (!roles.has(a) || !roles.has(b)) return;
    let l = lists.get(a);
    if (!l) lists.set(a, (l = []));
    l.push(b);
  };
  for (const e of edges) {
    add(e.server, e.client);
    add(e.client, e.server);
  }
  for (const id of roles.keys()) out.set(id, lists.get(id) ?? []);
  return out;
}
