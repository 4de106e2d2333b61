/**
 * The property the whole method exists for: in a given fleet state, can
 * every client complete mutual TLS with every peer server? Checked twice,
 * independently: with node:crypto path validation, and with `openssl
 * verify` on exported PEM files.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyChain } from '../protocol/chain.ts';
import type { Role } from '../protocol/steps.ts';

/** One device as a TLS peer sees it. */
export interface DeviceView {
  id: string;
  role: Role;
  anchors: string[];
  /** Presentation order: new certificate first, fallback after. */
  identities: string[];
}

/** A frozen fleet state, with a label saying how it was reached. */
export interface FleetSnapshot {
  label: string;
  devices: DeviceView[];
}

/** Result of a check: broken client→server pairs, and pairs needing the fallback certificate. */
export interface MatrixResult {
  broken: string[];
  fallbacks: number;
  pairs: number;
}

const pairs = (s: FleetSnapshot, peers?: (server: string, client: string) => boolean) => {
  const servers = s.devices.filter((d) => d.role === 'server');
  const clients = s.devices.filter((d) => d.role === 'client');
  return servers.flatMap((server) => clients.filter((c) => !peers || peers(server.id, c.id)).map((client) => ({ server, client })));
};

/** node:crypto check of every client/server pair. */
export function checkWithNode(s: FleetSnapshot, now: Date): MatrixResult {
  const parsed = new Map<string, X509Certificate>();
  const cert = (pem: string) => {
    let c = parsed.get(pem);
    if (!c) parsed.set(pem, (c = new X509Certificate(pem)));
    return c;
  };
  const out: MatrixResult = { broken: [], fallbacks: 0, pairs: 0 };
  for (const { server, client } of pairs(s)) {
    out.pairs++;
    const serverOk = verifyChain(cert(server.identities[0]!), client.anchors.map(cert), now, 'server').ok;
    const idx = client.identities.findIndex((id) => verifyChain(cert(id), server.anchors.map(cert), now, 'client').ok);
    if (!serverOk || idx < 0) out.broken.push(`${s.label}: ${client.id} -> ${server.id} (${!serverOk ? 'client rejects server cert' : 'server rejects every client cert'})`);
    else if (idx > 0) out.fallbacks++;
  }
  return out;
}

/**
 * The same check with the OpenSSL CLI: one `openssl verify` per trust store
 * over all certificates presented to it. Files go under `dir`.
 */
export function checkWithOpenssl(s: FleetSnapshot, dir: string): MatrixResult {
  mkdirSync(dir, { recursive: true });
  const file = (name: string, pem: string) => {
    const p = join(dir, name);
    writeFileSync(p, pem);
    return p;
  };
  const views = new Map(s.devices.map((d) => [d.id, {
    store: file(`${d.id}-store.pem`, d.anchors.join('')),
    ids: d.identities.map((pem, i) => file(`${d.id}-id${i}.pem`, pem)),
  }]));
  const verify = (store: string, purpose: string, certs: string[]): Set<string> => {
    let text: string;
    try {
      text = execFileSync('openssl', ['verify', '-CAfile', store, '-purpose', purpose, ...certs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      text = String((err as { stdout?: string }).stdout ?? '');
    }
    return new Set(certs.filter((c) => text.includes(`${c}: OK`)));
  };
  const okForServer = new Map<string, Set<string>>();
  const okForClient = new Map<string, Set<string>>();
  for (const d of s.devices) {
    const others = s.devices.filter((o) => o.role !== d.role);
    const presented = others.flatMap((o) => (d.role === 'server' ? views.get(o.id)!.ids : views.get(o.id)!.ids.slice(0, 1)));
    const ok = verify(views.get(d.id)!.store, d.role === 'server' ? 'sslclient' : 'sslserver', presented);
    (d.role === 'server' ? okForServer : okForClient).set(d.id, ok);
  }
  const out: MatrixResult = { broken: [], fallbacks: 0, pairs: 0 };
  for (const { server, client } of pairs(s)) {
    out.pairs++;
    const serverOk = okForClient.get(client.id)!.has(views.get(server.id)!.ids[0]!);
    const idx = views.get(client.id)!.ids.findIndex((f) => okForServer.get(server.id)!.has(f));
    if (!serverOk || idx < 0) out.broken.push(`${s.label}: ${client.id} -> ${server.id} (openssl: ${!serverOk ? 'client rejects server cert' : 'server rejects every client cert'})`);
    else if (idx > 0) out.fallbacks++;
  }
  return out;
}

/**
 * `checkWithOpenssl` over many snapshots, once per distinct fleet state
 * (identical states recur across changes). `sample(i)` may skip snapshots.
 */
export function checkStatesWithOpenssl(snaps: readonly FleetSnapshot[], dir: string, sample: (index: number) => boolean = () => true): { states: number; pairs: number; broken: string[] } {
  const seen = new Set<string>();
  const out = { states: 0, pairs: 0, broken: [] as string[] };
  snaps.forEach((s, i) => {
    const key = createHash('sha256').update(JSON.stringify(s.devices)).digest('hex');
    if (seen.has(key) || !sample(i)) return;
    seen.add(key);
    const r = checkWithOpenssl(s, join(dir, String(i)));
    out.states++;
    out.pairs += r.pairs;
    out.broken.push(...r.broken);
  });
  return out;
}
