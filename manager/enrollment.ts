/**
 * Bringing devices and their keys into the fleet: first enrollment from a
 * CSR (or a known public key), and re-key requests, which set the key the
 * device's certificate in the next rotation will carry.
 */
import type { Role } from '../protocol/steps.ts';
import { verifyCsr } from './ca/csr.ts';
import type { CaAuthority } from './ca-authority.ts';
import { ManagerError } from './errors.ts';
import type { FleetDb } from './fleet-db.ts';

/** Enroll a device by its CSR: checks the CSR's signature and name, issues its first certificate from the active root. */
export function enrollFromCsr(db: FleetDb, ca: CaAuthority, req: { deviceId: string; role: Role; csrPem: string; now: Date }): string {
  const csr = verifyCsr(req.csrPem);
  if (csr.commonName !== req.deviceId) throw new ManagerError('E_CSR_IDENTITY', `CSR names "${csr.commonName}", enrolling "${req.deviceId}"`);
  const certificate = ca.issueLeaf({ commonName: req.deviceId, spki: csr.publicKey, role: req.role }, req.now);
  db.addDevice({ id: req.deviceId, role: req.role, commonName: req.deviceId, spki: csr.publicKey, certificate });
  return certificate;
}

/**
 * Accept a re-key request: the device made a new key in its secure storage
 * and proves possession with the CSR. The next rotation issues the
 * device's new leaf for this key. Refused while a rotation is running (its
 * leaves are already issued).
 */
export function acceptRekey(db: FleetDb, req: { deviceId: string; csrPem: string }): void {
  const csr = verifyCsr(req.csrPem);
  if (csr.commonName !== req.deviceId) throw new ManagerError('E_CSR_IDENTITY', `CSR names "${csr.commonName}", sent for "${req.deviceId}"`);
  const running = db.rotations().find((r) => r.status === 'running');
  if (running) throw new ManagerError('E_ROTATION_ACTIVE', `rotation ${running.id} is running; send the re-key request after it completes`);
  db.device(req.deviceId);
  db.setDeviceKey(req.deviceId, csr.publicKey);
}
