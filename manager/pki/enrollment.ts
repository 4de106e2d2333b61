/**
 * Bringing devices and their keys into the fleet: first enrollment from a
 * CSR (or a known public key), and re-key requests, which set the key the
 * device's certificate in the next rotation will carry.
 */
import type { Role } from '../../protocol/steps.ts';
import { verifyCsr } from '../ca/csr.ts';
import type { CaAuthority } from './ca-authority.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb } from '../fleet/fleet-db.ts';
import { openRotation } from '../rotation/orchestrator.ts';
import { setBaseline } from '../fleet/reconcile.ts';
import { canVerify, rootAlgorithm } from '../rotation/algorithm-plan.ts';

/**
 * Enroll a device by its CSR: checks the CSR's signature and name, issues its
 * first certificate from the active root. `replace` re-enrols a device that
 * is already enrolled (a replaced board, or a key lost with its storage): it
 * gets a new certificate for the new key, its earlier acknowledgements are
 * never re-sent to the new store, and it must be provisioned again. Refused
 * while a rotation is open (its leaves are already issued). `verifies`: the
 * signature algorithms the device declared it can verify (RSA, ECDSA or an
 * exact algorithm; see ../rotation/algorithm-plan.ts); absent = both (on --replace: as
 * declared before). A device that cannot verify the active root is refused.
 */
export function enrollFromCsr(db: FleetDb, ca: CaAuthority, req: { deviceId: string; role: Role; csrPem: string; now: Date; replace?: boolean; verifies?: readonly string[] }): string {
  const csr = verifyCsr(req.csrPem);
  if (csr.commonName !== req.deviceId) throw new ManagerError('E_CSR_IDENTITY', `CSR names "${csr.commonName}", enrolling "${req.deviceId}"`);
  const existing = db.devices().find((d) => d.id === req.deviceId);
  if (existing && !req.replace) {
    throw new ManagerError('E_DEVICE_EXISTS', `device ${req.deviceId} is already enrolled (${existing.role}); pick another id, or re-enrol it with its new key: "trustroll enroll --replace --id ${req.deviceId} --role ${existing.role} --csr <file>"`);
  }
  if (!existing && req.replace) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${req.deviceId} is not enrolled, so there is nothing to replace; enrol it without --replace`);
  if (existing && existing.role !== req.role) throw new ManagerError('E_DEVICE_EXISTS', `device ${req.deviceId} is enrolled as ${existing.role}, not ${req.role}; a device keeps its role (enrol a new id for the other role)`);
  const open = existing ? openRotation(db) : null;
  if (open) throw new ManagerError('E_ROTATION_ACTIVE', `rotation ${open.id} is ${open.status}; re-enrol ${req.deviceId} after it completes ("trustroll rotate --resume ${open.id}")`);
  if (req.verifies) {
    // The root its peers' certificates chain to and, with separate roots, the one its own certificate chains to.
    const active = [ca.peerRoot(req.role), ca.issuingRoot(req.role)].map((r) => rootAlgorithm(r.cert)).find((a) => !canVerify(req.verifies!, a)) ?? rootAlgorithm(ca.peerRoot(req.role).cert);
    if (!canVerify(req.verifies, active)) {
      throw new ManagerError('E_ALGORITHM_UNVERIFIABLE', `device ${req.deviceId} verifies ${req.verifies.join(',')}, but the fleet root is ${active}: it could not verify its peers. Nothing was enrolled; enrol it in a fleet whose root it can verify, or check --verifies`);
    }
  }
  const certificate = ca.issueLeaf({ commonName: req.deviceId, spki: csr.publicKey, role: req.role }, req.now);
  db.tx(() => {
    if (existing) {
      db.setDeviceCertificate(req.deviceId, certificate, csr.publicKey);
      setBaseline(db, req.deviceId, existing.nextSeq - 1);
    } else db.addDevice({ id: req.deviceId, role: req.role, commonName: req.deviceId, spki: csr.publicKey, certificate });
    if (req.verifies) db.setDeviceVerifies(req.deviceId, req.verifies);
  });
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
