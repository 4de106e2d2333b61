/**
 * The certificates view: the fleet's roots (the active root, D, R1 and
 * OldWithNew, with its PEM, of an open rotation), the management and operator CAs, and when the devices'
 * certificates expire, for one timeline.
 */
import { changesRoot } from '../phase.ts';
import type { CertificatesView } from '../http/api-types.ts';
import type { ManagerService } from './manager-service.ts';
import { certInfo } from './rotation-view.ts';

/** Build the view from the service's database and fleet lines. */
export function certificatesView(service: ManagerService, cas: { operatorCa: string; mgmtCa: string }): CertificatesView {
  const roots: CertificatesView['roots'] = [{ ...certInfo(service.m.ca.activeRoot().cert), name: 'fleet root (active)', kind: 'active-root' }];
  const rot = service.m.db.rotations().at(-1);
  // A renewal has no D or R1 of its own to show.
  if (rot && rot.status !== 'complete' && changesRoot(rot)) {
    roots.push({ ...certInfo(rot.distribution), name: `distribution root D of ${rot.id} (NewWithOld)`, kind: 'distribution' });
    roots.push({ ...certInfo(rot.newRoot), name: `new root R1 of ${rot.id} (NewWithNew)`, kind: 'new-root' });
  }
  // OldWithNew (K0 certified by K1) of the latest root rotation, open or complete: it lets a peer that trusts only
  // R1 verify a device still presenting a K0 leaf (an excluded device before its catch-up); see docs/lifecycle.md.
  const own = service.m.db.latestOldWithNew();
  if (own && new Date(certInfo(own.pem).notAfter) > new Date()) {
    roots.push({ ...certInfo(own.pem), name: `old root certified by the new key, ${own.rotationId} (OldWithNew)`, kind: 'old-with-new', pem: own.pem });
  }
  roots.push({ ...certInfo(cas.mgmtCa), name: 'management CA (broker and device links)', kind: 'management-ca' });
  roots.push({ ...certInfo(cas.operatorCa), name: 'operator CA (dashboard and API)', kind: 'operator-ca' });
  let earliest: CertificatesView['devices']['earliest'] = null;
  let latest: CertificatesView['devices']['latest'] = null;
  const months = new Map<string, number>();
  let count = 0;
  for (const d of service.fleet.all()) {
    if (!d.certNotAfter) continue;
    count++;
    if (!earliest || d.certNotAfter < earliest.notAfter) earliest = { deviceId: d.id, notAfter: d.certNotAfter };
    if (!latest || d.certNotAfter > latest.notAfter) latest = { deviceId: d.id, notAfter: d.certNotAfter };
    const m = d.certNotAfter.slice(0, 7);
    months.set(m, (months.get(m) ?? 0) + 1);
  }
  return { roots, devices: { count, earliest, latest, byMonth: [...months].sort(([a], [b]) => a.localeCompare(b)).map(([month, n]) => ({ month, count: n })) } };
}
