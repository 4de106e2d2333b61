/**
 * The technician's local status check: reads the device's trust store,
 * verifies its integrity, and reports what the device trusts, what it
 * presents, where it stands in a rotation, and anything that needs action.
 * Fingerprints and names only; no key material.
 */
import { fingerprint, parseCertificate, validity, dn } from '../protocol/pem.ts';
import { deviceSequence } from '../protocol/schedule.ts';
import { SCHEDULES } from '../protocol/steps.ts';
import type { DeviceRecord } from './device-record.ts';
import type { HistoryEntry } from './state-store.ts';

/** One certificate as a technician sees it. */
export interface CertLine {
  slot: string;
  subject: string;
  issuer: string;
  sha256: string;
  notBefore: string;
  notAfter: string;
  daysLeft: number;
}

/** The status report. */
export interface DeviceStatus {
  deviceId: string;
  role: string;
  trust: CertLine[];
  identities: CertLine[];
  rotation: { id: string; schedule: string; completed: string[]; remaining: string[] } | null;
  lastSeq: number;
  history: HistoryEntry[];
  warnings: string[];
}

const DAY = 86_400_000;

function line(slot: string, pem: string, now: Date): CertLine {
  const c = parseCertificate(pem, slot);
  const v = validity(c);
  return {
    slot, subject: dn(c.subject), issuer: dn(c.issuer), sha256: fingerprint(c),
    notBefore: v.notBefore.toISOString(), notAfter: v.notAfter.toISOString(), daysLeft: Math.floor((v.notAfter.getTime() - now.getTime()) / DAY),
  };
}

/** Build the status of a device record at `now`. */
export function deviceStatus(record: DeviceRecord, history: HistoryEntry[], now: Date): DeviceStatus {
  const trust = [
    line('current root', record.trust.current, now),
    ...(record.trust.distribution ? [line('distribution root (NewWithOld)', record.trust.distribution, now)] : []),
    ...(record.trust.next ? [line('new root (NewWithNew)', record.trust.next, now)] : []),
  ];
  const identities = [
    line(record.identity.fallback ? 'identity (presented first)' : 'identity', record.identity.active.cert, now),
    ...(record.identity.fallback ? [line('fallback identity', record.identity.fallback.cert, now)] : []),
  ];
  const warnings: string[] = [];
  for (const c of [...trust, ...identities]) {
    if (c.daysLeft < 0) warnings.push(`${c.slot} expired on ${c.notAfter}`);
    else if (c.daysLeft < 30) warnings.push(`${c.slot} expires in ${c.daysLeft} days`);
  }
  let rotation: DeviceStatus['rotation'] = null;
  if (record.rotation) {
    const schedule = SCHEDULES[record.rotation.schedule];
    const seq = schedule ? deviceSequence(schedule, record.role) : [];
    const remaining = seq.slice(record.rotation.completed.length);
    rotation = { ...record.rotation, remaining };
    if (remaining.length > 0) warnings.push(`rotation ${record.rotation.id} is in progress (next: ${remaining[0]}); this is safe, the manager continues it`);
  }
  return { deviceId: record.deviceId, role: record.role, trust, identities, rotation, lastSeq: record.lastSeq, history, warnings };
}

/** Human-readable rendering. */
export function describeStatus(s: DeviceStatus): string {
  const cert = (c: CertLine) => `  ${c.slot}: ${c.subject}\n    issuer ${c.issuer}; valid to ${c.notAfter} (${c.daysLeft} days); sha256 ${c.sha256.slice(0, 16)}…`;
  return [
    `device ${s.deviceId} (${s.role}), last command #${s.lastSeq}`,
    'trusts:', ...s.trust.map(cert),
    'presents:', ...s.identities.map(cert),
    s.rotation ? `rotation ${s.rotation.id} (${s.rotation.schedule}): done ${s.rotation.completed.join(', ') || 'none'}; remaining ${s.rotation.remaining.join(', ') || 'none'}` : 'no rotation recorded',
    ...s.history.map((h) => `  ${h.at} #${h.seq} ${h.rotationId} ${h.step} store ${h.storeHash.slice(0, 12)}…`),
    ...(s.warnings.length ? ['warnings:', ...s.warnings.map((w) => `  ${w}`)] : ['status: OK']),
  ].join('\n');
}
