/**
 * PKCS#10 certification requests (RFC 2986) built on the device for a
 * re-key inside its secure storage: the private key never leaves the HAL,
 * so the request is signed through a callback that receives the DER
 * CertificationRequestInfo and returns a signature over SHA-256 of it —
 * exactly what the HAL's `KeyStore.sign(label, data)` does.
 *
 * What the callback must return: for P-256 an ECDSA signature, DER
 * (SEQUENCE { r, s }) or raw r‖s (64 octets, as PKCS#11 CKM_ECDSA and
 * TPM2_Sign produce; converted to DER here); for RSA-2048 an
 * RSASSA-PKCS1-v1_5 signature with the SHA-256 DigestInfo.
 *
 * (node:crypto has no ECDSA over a bare digest: `crypto.sign(null, digest,
 * ecKey)` hashes again. That is why the callback receives the data.)
 *
 * The built request is verified against `spki` before it is returned, so a
 * signer that hashes twice or signs with another key is caught on the device.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { bitString, integer, name, nullValue, oid, sequence, tlv } from './der.ts';
import { ProtocolError } from './errors.ts';

/** Key algorithms a device may re-key to. */
export type CsrKeyAlgorithm = 'P-256' | 'RSA-2048' | 'RSA-3072';

/** DER prefix of the DigestInfo for SHA-256 (RFC 8017 §9.2 note 1). */
export const SHA256_DIGEST_INFO_PREFIX = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** Input of buildCsr. */
export interface BuildCsrOptions {
  readonly commonName: string;
  /** DER SubjectPublicKeyInfo of the HAL key. */
  readonly spki: Buffer;
  /** Signs SHA-256 of the given bytes with the HAL key (see the module comment for the format). */
  readonly sign: (data: Buffer) => Promise<Buffer>;
  readonly algorithm: CsrKeyAlgorithm;
}

/** Why a request could not be built (code E_CSR_BUILD). Never carries key material. */
export class CsrBuildError extends ProtocolError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CSR_BUILD', message, options?.cause === undefined ? {} : { cause: String((options.cause as Error)?.message ?? options.cause) });
    this.name = 'CsrBuildError';
  }
}

const SIGNATURE_ALGORITHM: Record<CsrKeyAlgorithm, Buffer> = {
  'P-256': sequence(oid('1.2.840.10045.4.3.2')),
  'RSA-2048': sequence(oid('1.2.840.113549.1.1.11'), nullValue()),
  'RSA-3072': sequence(oid('1.2.840.113549.1.1.11'), nullValue()),
};

function publicKeyFor(spki: Buffer, algorithm: CsrKeyAlgorithm): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CsrBuildError(`spki is not a DER SubjectPublicKeyInfo (${(err as Error).message})`, { cause: err });
  }
  const d = key.asymmetricKeyDetails ?? {};
  const ok = algorithm === 'P-256'
    ? key.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1'
    : key.asymmetricKeyType === 'rsa' && d.modulusLength === (algorithm === 'RSA-3072' ? 3072 : 2048);
  if (!ok) throw new CsrBuildError(`spki holds a ${key.asymmetricKeyType} key that is not ${algorithm}`);
  return key;
}

/** DER ECDSA-Sig-Value from raw r‖s. */
function p1363ToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

function normalizeSignature(sig: Buffer, cri: Buffer, key: KeyObject, algorithm: CsrKeyAlgorithm): Buffer {
  if (verify('sha256', cri, key, sig)) return sig;
  if (algorithm === 'P-256' && sig.length === 64 && verify('sha256', cri, { key, dsaEncoding: 'ieee-p1363' }, sig)) {
    return p1363ToDer(sig);
  }
  throw new CsrBuildError(`the signer's ${algorithm} signature does not verify over the request; it must sign SHA-256 of the request info (hashing once) with the key of spki`);
}

/** Build a PKCS#10 request for `commonName` and `spki`, signed through `sign`; PEM "CERTIFICATE REQUEST". */
export async function buildCsr(options: BuildCsrOptions): Promise<string> {
  const key = publicKeyFor(options.spki, options.algorithm);
  let subject: Buffer;
  try {
    subject = name([['CN', options.commonName]]);
  } catch (err) {
    throw new CsrBuildError(`commonName is not usable: ${(err as Error).message}`, { cause: err });
  }
  const cri = sequence(integer(0), subject, options.spki, tlv(0xa0));
  const raw = await options.sign(cri);
  if (!(raw instanceof Uint8Array)) throw new CsrBuildError('the signer returned no signature bytes');
  const sig = normalizeSignature(Buffer.from(raw), cri, key, options.algorithm);
  const der = sequence(cri, SIGNATURE_ALGORITHM[options.algorithm], bitString(sig));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}
