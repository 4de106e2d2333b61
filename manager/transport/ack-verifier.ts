/**
 * The manager's check of device signatures on acknowledgements: an ack
 * counts only if it is signed by the key of the device's current
 * certificate, or by the key it re-keyed to (protocol/ack-signature.ts).
 * Keys are cached per device and re-read from the database once when a
 * signature does not verify (the device may have re-keyed or rotated).
 */
import { ackKey, verifyAckSignature, type AckKey } from '../../protocol/ack-signature.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import { spkiOfStoredPem } from '../../protocol/pem.ts';
import type { FleetDb } from '../fleet/fleet-db.ts';

/** A verifier for the Orchestrator's `verifyAck`, reading device keys from the fleet database. */
export function ackVerifier(db: FleetDb): (ack: Ack) => boolean {
  const cache = new Map<string, AckKey[]>();
  const load = (deviceId: string): AckKey[] | null => {
    let device;
    try {
      device = db.device(deviceId);
    } catch {
      return null;
    }
    const certKey = spkiOfStoredPem(device.certificate);
    const keys = [ackKey(certKey), ...(certKey.equals(device.spki) ? [] : [ackKey(device.spki)])];
    cache.set(deviceId, keys);
    return keys;
  };
  return (ack) => {
    const cached = cache.get(ack.deviceId);
    if (cached && verifyAckSignature(ack, cached)) return true;
    const fresh = load(ack.deviceId);
    return fresh !== null && verifyAckSignature(ack, fresh);
  };
}
