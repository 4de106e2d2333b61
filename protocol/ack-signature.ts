/**
 * Device signatures on acknowledgements. The manager advances the fleet on
 * acknowledgements (a server's P4 waits for every client's P2), so a forged
 * "P2 done" through a compromised broker could make a server switch to a
 * certificate some client cannot verify yet. Each device therefore signs
 * its acknowledgements with its identity key (in its HAL), and the manager
 * accepts only acknowledgements signed by the device's key.
 */
import { createPublicKey, verify } from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';
import type { Ack } from './messages/ack.ts';

/** The bytes a device signs: the canonical acknowledgement without `sig`. */
export function ackSignedBytes(ack: Ack): Buffer {
  const { sig: _sig, ...rest } = ack;
  return Buffer.from(canonicalJson(rest));
}

/** Signature algorithm name for a DER SubjectPublicKeyInfo. */
export function ackAlgorithm(spki: Buffer): 'ES256' | 'RS256' {
  return createPublicKey({ key: spki, format: 'der', type: 'spki' }).asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256';
}

/** True if `ack` carries a valid signature by one of `spkis` (the device's current and pending keys). */
export function verifyAckSignature(ack: Ack, spkis: readonly Buffer[]): boolean {
  if (!ack.sig) return false;
  const sig = Buffer.from(ack.sig.value, 'base64');
  const data = ackSignedBytes(ack);
  return spkis.some((spki) => {
    try {
      const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
      return ackAlgorithm(spki) === ack.sig!.alg && verify('sha256', data, key, sig);
    } catch {
      return false;
    }
  });
}
