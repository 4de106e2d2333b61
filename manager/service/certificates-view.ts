/**
 * The certificates view: the fleet's roots (the active root, or both of a
 * separate-roots fleet; D, R1 and OldWithNew, with its PEM, of an open rotation), the management and operator CAs, and when the devices'
 * certificates expire, for one timeline.
 */
import { SCHEDULES } from '../../protocol/steps.ts';
import { changesRoot } from '../rotation/phase.ts';
import type { CertificatesView } from '../http/api-types.ts';
import type { ManagerService } from './manager-service.ts';
import { certInfo } from './rotation-view.ts';

/** Build the view from the service's database and fleet lines. */
export function certificatesView(service: ManagerService, cas: { operatorCa: string; mgmtCa: string }): CertificatesView {
  const ca = service.m.ca;
  // A fleet with separate roots shows both: the server root signs the printers' certificates, the client root the consoles'.
  const roots: CertificatesView['roots'] = ca.separateRoots()
    ? (['server', 'client'] as const).map((side) => ({ ...certInfo(ca.activeRoot(side).cert), name: `${side} root (active)`, kind: 'active-root' as const, side }))
    : [{ ...certInfo(ca.activeRoot().cert), name: 'fleet root (active)', kind: 'active-root' }];
  const rot = service.m.db.rotations().at(-1);
  // A renewal has no D or R1 of its own to show.
  if (rot && rot.status !== 'complete' && changesRoot(rot)) {
    const side = SCHEDULES[rot.schedule]?.root;
    const of = side ? `the ${side} root's rotation ${rot.id}` : rot.id;
    roots.push({ ...certInfo(rot.distribution), name: `distribution root D of ${of} (NewWithOld)`, kind: 'distribution', ...(side ? { side } : {}) });
    roots.push({ ...certInfo(rot.newRoot), name: `new root R1 of ${of} (NewWithNew)`, kind: 'new-root', ...(side ? { side } : {}) });
  }
  // OldWithNew (K0 certified by K1) of the latest root rotation, open or complete: it lets a peer that trusts only
  // R1 verify a device still presenting a K0 leaf (an excluded device before its catch-up); see docs/lifecycle.md.
  const own = service.m.db.latestOldWithNew();
  if (own && new Date(certInfo(own.pem).notAfter) > new Date()) {
    const side = SCHEDULES[service.m.db.rotation(own.rotationId)?.schedule ?? '']?.root;
    roots.push({ ...certInfo(own.pem), name: `old ${side ? `${side} ` : ''}root certified by the new key, ${own.rotationId} (OldWithNew)`, kind: 'old-with-new', ...(side ? { side } : {}), pem: own.pem });
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
