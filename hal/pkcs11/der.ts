/**
 * The few fixed DER encodings the HAL needs: the SHA-256 DigestInfo prefix
 * (RFC 8017 section 9.2 note 1), the P-256 curve OID as CKA_EC_PARAMS, and
 * conversion of PKCS#11's raw ECDSA signature (r || s) to the X9.62
 * `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
 */
import crypto from 'node:crypto';
import { HalError } from '../errors.ts';

/** DER prefix of DigestInfo { sha256, NULL } before the 32 digest bytes. */
export const SHA256_DIGEST_INFO_PREFIX = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** OBJECT IDENTIFIER prime256v1 (1.2.840.10045.3.1.7), the CKA_EC_PARAMS for P-256. */
export const P256_EC_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

function derInteger(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  let v = unsigned.subarray(i);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return Buffer.concat([Buffer.from([0x02, v.length]), v]);
}

/** Converts a raw 64-byte P-256 signature (r || s) to DER. */
export function rawEcdsaToDer(raw: Buffer): Buffer {
  if (raw.length !== 64) throw new HalError('E_HAL_IO', `token returned a ${raw.length}-byte ECDSA signature, expected 64`);
  const body = Buffer.concat([derInteger(raw.subarray(0, 32)), derInteger(raw.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** DER SPKI of a P-256 key from CKA_EC_POINT (a DER OCTET STRING holding 04||X||Y). */
export function p256SpkiFromEcPoint(ecPoint: Buffer): Buffer {
  let point = ecPoint;
  if (point.length === 67 && point[0] === 0x04 && point[1] === 65) point = point.subarray(2);
  if (point.length !== 65 || point[0] !== 0x04) throw new HalError('E_HAL_IO', 'token returned an unexpected CKA_EC_POINT encoding');
  return crypto
    .createPublicKey({
      format: 'jwk',
      key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
    })
    .export({ type: 'spki', format: 'der' });
}

/** DER SPKI of an RSA key from CKA_MODULUS and CKA_PUBLIC_EXPONENT. */
export function rsaSpki(modulus: Buffer, exponent: Buffer): Buffer {
  return crypto
    .createPublicKey({ format: 'jwk', key: { kty: 'RSA', n: stripZeros(modulus).toString('base64url'), e: exponent.toString('base64url') } })
    .export({ type: 'spki', format: 'der' });
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}
