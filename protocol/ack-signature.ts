/**
 * Device signatures on acknowledgements. The manager advances the fleet on
 * acknowledgements (a server's P4 waits for every client's P2), so a forged
 * "P2 done" through a compromised broker could make a server switch to a
 * certificate some client cannot verify yet. Each device therefore signs
 * its acknowledgements with its identity key (in its HAL), and the manager
 * accepts only acknowledgements signed by the device's key.
 */
import { createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
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
  const key = createPublicKey(p256Jwk(spki) ?? { key: spki, format: 'der', type: 'spki' });
  return { key, alg: key.asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256' };
}

/** DER prefix of every P-256 SubjectPublicKeyInfo with an uncompressed point (RFC 5480). */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

/**
 * A P-256 SPKI as a JWK: OpenSSL 3.0 imports it about twice as fast as the
 * DER (which goes through its decoder framework); the curve check is the
 * same. Null for any other key, which then takes the DER path.
 */
function p256Jwk(spki: Buffer): { key: JsonWebKey; format: 'jwk' } | null {
  if (spki.length !== 91 || !spki.subarray(0, 26).equals(P256_SPKI_PREFIX) || spki[26] !== 0x04) return null;
  return { key: { kty: 'EC', crv: 'P-256', x: spki.subarray(27, 59).toString('base64url'), y: spki.subarray(59, 91).toString('base64url') }, format: 'jwk' };
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
