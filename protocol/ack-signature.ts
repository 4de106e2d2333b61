/**
 * Device signatures on acknowledgements. The manager advances the fleet on
 * acknowledgements (a server's P4 waits for every client's P2), so a forged
 * "P2 done" through a compromised broker could make a server switch to a
 * certificate some client cannot verify yet. Each device therefore signs
 * its acknowledgements with its identity key (in its HAL), and the manager
 * accepts only acknowledgements signed by the device's key.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';
import type { Ack } from './messages/ack.ts';

/** A device key the manager accepts acknowledgements from. */
export interface AckKey {
  key: KeyObject;
  alg: 'ES256' | 'RS256';
}

/** The bytes a device signs: the canonical acknowledgement without `sig`. */
export function ackSignedBytes(ack: Ack): Buffer {
  const { sig: _sig, ...rest } = ack;
  return Buffer.from(canonicalJson(rest));
}

/** The verification key for a DER SubjectPublicKeyInfo (build once, reuse). */
export function ackKey(spki: Buffer): AckKey {
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  return { key, alg: key.asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256' };
}

/** True if `ack` carries a valid signature by one of `keys` (the device's current and pending keys). */
export function verifyAckSignature(ack: Ack, keys: readonly AckKey[]): boolean {
  if (!ack.sig) return false;
  const candidates = keys.filter((k) => k.alg === ack.sig!.alg);
  if (candidates.length === 0) return false;
  const sig = Buffer.from(ack.sig.value, 'base64');
  const data = ackSignedBytes(ack);
  return candidates.some((k) => {
    try {
      return verify('sha256', data, k.key, sig);
    } catch {
      return false;
    }
  });
}
