/**
 * The manager's check of device signatures on acknowledgements: an ack
 * counts only if it is signed by the key of the device's current
 * certificate, or by the key it re-keyed to (protocol/ack-signature.ts).
 */
import { X509Certificate } from 'node:crypto';
import { verifyAckSignature } from '../protocol/ack-signature.ts';
import type { Ack } from '../protocol/messages/ack.ts';
import { spkiOf } from '../protocol/pem.ts';
import type { FleetDb } from './fleet-db.ts';

/** A verifier for the Orchestrator's `verifyAck`, reading device keys from the fleet database. */
export function ackVerifier(db: FleetDb): (ack: Ack) => boolean {
  const keys = new Map<string, { certificate: string; spkis: Buffer[] }>();
  return (ack) => {
    let device;
    try {
      device = db.device(ack.deviceId);
    } catch {
      return false;
    }
    let known = keys.get(ack.deviceId);
    if (!known || known.certificate !== device.certificate || !known.spkis.some((k) => k.equals(device.spki))) {
      const certKey = spkiOf(new X509Certificate(device.certificate));
      known = { certificate: device.certificate, spkis: certKey.equals(device.spki) ? [certKey] : [certKey, device.spki] };
      keys.set(ack.deviceId, known);
    }
    return verifyAckSignature(ack, known.spkis);
  };
}
