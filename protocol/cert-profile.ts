/**
 * What a certificate may be used for: CA flag, keyUsage bits and extended
 * key usage, read from the DER (node:crypto exposes only part of this).
 */
import type { X509Certificate } from 'node:crypto';
import { certificateExtensions, readTlv } from './der-reader.ts';
import { ProtocolError } from './errors.ts';

const OID_KEY_USAGE = '2.5.29.15';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
/** id-kp-serverAuth and id-kp-clientAuth (RFC 5280 §4.2.1.12). */
export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** The parts of a certificate's profile the trust decisions depend on. */
export interface CertProfile {
  readonly isCa: boolean;
  /** keyUsage present and has keyCertSign; absent keyUsage means "any" (RFC 5280). */
  readonly canSignCerts: boolean;
  readonly keyUsagePresent: boolean;
  /** Extended key usage OIDs, or null when the extension is absent (any purpose). */
  readonly extendedKeyUsage: readonly string[] | null;
  readonly basicConstraintsCritical: boolean;
}

const cache = new WeakMap<X509Certificate, CertProfile>();

/** Read (and memoize per certificate object) the certificate's profile. */
export function profileOf(cert: X509Certificate): CertProfile {
  const hit = cache.get(cert);
  if (hit) return hit;
  let exts: ReturnType<typeof certificateExtensions>;
  let keyCertSign = false;
  try {
    exts = certificateExtensions(cert.raw);
    const ku = exts.get(OID_KEY_USAGE);
    if (ku) {
      const bits = readTlv(ku.value, 0);
      if (bits.tag !== 0x03 || bits.end - bits.start < 1) throw new Error('keyUsage is not a BIT STRING');
      const first = bits.end - bits.start > 1 ? ku.value[bits.start + 1]! : 0;
      keyCertSign = (first & 0x04) !== 0;
    }
  } catch (err) {
    throw new ProtocolError('E_PEM', `certificate "${cert.subject}" has malformed extensions (${(err as Error).message})`);
  }
  const ku = exts.get(OID_KEY_USAGE);
  const profile: CertProfile = {
    isCa: cert.ca,
    keyUsagePresent: ku !== undefined,
    canSignCerts: ku === undefined ? cert.ca : keyCertSign,
    extendedKeyUsage: cert.keyUsage ?? null,
    basicConstraintsCritical: exts.get(OID_BASIC_CONSTRAINTS)?.critical ?? false,
  };
  cache.set(cert, profile);
  return profile;
}

/** True if the certificate may be used as a TLS identity of the given role. */
export function allowsPurpose(cert: X509Certificate, role: 'server' | 'client'): boolean {
  const eku = profileOf(cert).extendedKeyUsage;
  return eku === null || eku.includes(role === 'server' ? EKU_SERVER_AUTH : EKU_CLIENT_AUTH);
}
