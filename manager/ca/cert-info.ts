/**
 * Reads what the CA needs from one of its own CA certificates: the exact
 * subject Name bytes (issued certificates must repeat them byte for byte),
 * the key identifier, the validity and the CA flags. Uses node:crypto and
 * the protocol DER reader only, so worker threads load it cheaply.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { certificateExtensions, children, readTlv, type Tlv } from '../../protocol/der-reader.ts';
import { CaError } from './errors.ts';
import { keyIdentifier, spkiOf } from './keys.ts';
import { pemToDer } from './pem.ts';

/** The fields of a CA certificate that issuance depends on. */
export interface CaCertInfo {
  readonly der: Buffer;
  /** DER Name, exactly as encoded in the certificate. */
  readonly subject: Buffer;
  readonly issuer: Buffer;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  /** subjectKeyIdentifier if present, else RFC 5280 method 1 over the key. */
  readonly keyId: Buffer;
  readonly hasSubjectKeyId: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly isCa: boolean;
  /** keyUsage carries keyCertSign (false when keyUsage is absent). */
  readonly keyCertSign: boolean;
}

const OID_SKI = '2.5.29.14';
const OID_KEY_USAGE = '2.5.29.15';

/** Parse a PEM (or DER) certificate; E_CA_CERT_MALFORMED on anything unparsable. */
export function readCaCertificate(cert: string | Buffer): CaCertInfo {
  const der = typeof cert === 'string' ? pemToDer(cert) : cert;
  try {
    const x = new X509Certificate(der);
    const top = readTlv(der, 0);
    if (top.end !== der.length) throw new Error('trailing bytes after the certificate');
    const tbs = children(der, top)[0];
    if (!tbs) throw new Error('no TBSCertificate');
    const fields = rawChildren(der, tbs);
    const base = fields[0]?.[0] === 0xa0 ? 1 : 0;
    const field = (i: number): Buffer => {
      const f = fields[base + i];
      if (!f) throw new Error('TBSCertificate is truncated');
      return f;
    };
    const issuer = field(2);
    const subject = field(4);
    const spki = field(5);
    const exts = certificateExtensions(der);
    const ski = exts.get(OID_SKI);
    let keyId: Buffer;
    if (ski) {
      const inner = readTlv(ski.value, 0);
      if (inner.tag !== 0x04 || inner.end === inner.start) throw new Error('subjectKeyIdentifier is not a non-empty OCTET STRING');
      keyId = Buffer.from(ski.value.subarray(inner.start, inner.end));
    } else {
      keyId = keyIdentifier(spki);
    }
    const ku = exts.get(OID_KEY_USAGE);
    let keyCertSign = false;
    if (ku) {
      const bits = readTlv(ku.value, 0);
      keyCertSign = bits.tag === 0x03 && bits.end - bits.start > 1 && (ku.value[bits.start + 1]! & 0x04) !== 0;
    }
    return {
      der: Buffer.from(der),
      subject: Buffer.from(subject),
      issuer: Buffer.from(issuer),
      spki: Buffer.from(spki),
      keyId,
      hasSubjectKeyId: ski !== undefined,
      notBefore: new Date(x.validFrom),
      notAfter: new Date(x.validTo),
      isCa: x.ca,
      keyCertSign,
    };
  } catch (err) {
    if (err instanceof CaError) throw err;
    throw new CaError('E_CA_CERT_MALFORMED', `CA certificate could not be read (${(err as Error).message})`, { cause: err });
  }
}

/** Each child of a constructed TLV as its complete encoding (header included). */
export function rawChildren(der: Buffer, parent: Tlv): Buffer[] {
  let at = parent.start;
  return children(der, parent).map((t) => {
    const raw = der.subarray(at, t.end);
    at = t.next;
    return raw;
  });
}

/**
 * Check that a CA certificate may issue and that `key` is its private key;
 * throws E_CA_NOT_CA or E_CA_KEY_MISMATCH.
 */
export function assertIssuer(info: CaCertInfo, key: KeyObject): void {
  if (!info.isCa || !info.keyCertSign) {
    throw new CaError('E_CA_NOT_CA', `certificate is not a CA certificate (CA:${info.isCa}, keyCertSign:${info.keyCertSign})`);
  }
  if (key.type !== 'private') throw new CaError('E_CA_KEY_MISMATCH', 'the CA key must be a private KeyObject');
  if (!spkiOf(key).equals(info.spki)) {
    throw new CaError('E_CA_KEY_MISMATCH', 'the CA private key does not match the public key in the CA certificate');
  }
}
