/**
 * What a certificate renewal is made of, before the orchestrator records and
 * sends it: one `renew` step per device, a new certificate for each under
 * the root of its side (the active root; with separate roots, the root that
 * signs that side), and the refusal when a new certificate would not
 * outlive the current one because that root expires first.
 */
import { randomUUID } from 'node:crypto';
import { parseCertificate, validity } from '../../protocol/pem.ts';
import { RENEW } from '../../protocol/steps.ts';
import type { RotationAuthority } from './authority.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb, RotationRow } from '../fleet/fleet-db.ts';

/** A renewal ready to be inserted (FleetDb.insertRotation). */
export interface RenewalPlan {
  id: string;
  row: RotationRow;
  leaves: Map<string, string>;
  steps: { deviceId: string; step: string }[];
}

/**
 * Plan the renewal of `deviceIds` at `now`: E_BAD_REQUEST for none,
 * E_DEVICE_UNKNOWN for a device not enrolled, E_RENEWAL_NOT_LONGER when a
 * renewed certificate would not outlive the current one.
 */
export function planRenewal(db: FleetDb, authority: RotationAuthority, now: Date, deviceIds: readonly string[], rotationId?: string): RenewalPlan {
  const separate = authority.separateRoots?.() ?? false;
  const ids = [...new Set(deviceIds)];
  if (ids.length === 0) throw new ManagerError('E_BAD_REQUEST', 'a renewal needs at least one device id');
  const devices = ids.map((d) => db.device(d));
  const id = rotationId ?? `renew-${now.toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`;
  // The row's D and R1 columns hold the active root (with separate roots: the server root); a renewal activates nothing.
  const root = authority.activeRoot().cert;
  const leaves = new Map(devices.map((d) => [d.id, authority.issueLeaf({ commonName: d.commonName, spki: d.spki, role: d.role }, now)]));
  const short = devices.filter((d) => notAfterOf(leaves.get(d.id)!) <= notAfterOf(d.certificate));
  if (short.length > 0) {
    const side = separate ? short[0]!.role : undefined;
    const signer = side ? `the ${side} root, which signs ${short[0]!.id}'s certificate,` : 'the active root';
    const rotate = side ? `"trustroll rotate --root ${side}"` : '"trustroll rotate"';
    throw new ManagerError('E_RENEWAL_NOT_LONGER', `a renewed certificate for ${short.map((d) => d.id).slice(0, 10).join(', ')}${short.length > 10 ? ` and ${short.length - 10} more` : ''} would not outlive the current one: ${signer} expires ${new Date(notAfterOf(authority.activeRoot(side).cert)).toISOString()}. Rotate the root (${rotate}); its new certificates extend every device it signs`);
  }
  const steps = devices.map((d) => ({ deviceId: d.id, step: RENEW.steps.find((s) => s.role === d.role)!.id }));
  const row: RotationRow = {
    id, schedule: RENEW.name, status: 'running', unsafe: false, distribution: root, newRoot: root,
    createdAt: now.toISOString(), updatedAt: now.toISOString(), error: null,
  };
  return { id, row, leaves, steps };
}

/** A certificate's notAfter in epoch ms. */
function notAfterOf(pem: string): number {
  return validity(parseCertificate(pem, 'certificate')).notAfter.getTime();
}
