/**
 * Software private keys for the backends that hold key bytes themselves
 * (file, EEPROM). Keys are PKCS#8 DER; signing is node:crypto's SHA-256
 * ECDSA (DER) or RSASSA-PKCS1-v1_5.
 */
import crypto from 'node:crypto';
import { rsaBits, type KeyAlgorithm } from '../key-store.ts';
import { HalError } from '../errors.ts';

/** A decoded software key: its algorithm, DER SPKI, and the private KeyObject. */
export interface SoftKey {
  readonly algorithm: KeyAlgorithm;
  readonly spki: Buffer;
  readonly privateKey: crypto.KeyObject;
}

/** Generates a new key and returns it with its PKCS#8 DER encoding. */
export function generateSoftKey(algorithm: KeyAlgorithm): { key: SoftKey; pkcs8: Buffer } {
  const bits = rsaBits(algorithm);
  const pair =
    bits === undefined
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : crypto.generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  const pkcs8 = pair.privateKey.export({ type: 'pkcs8', format: 'der' });
  return { key: decodeSoftKey(pkcs8), pkcs8 };
}

/** Decodes PKCS#8 DER into a SoftKey; E_HAL_RECORD_CORRUPT if it is not a P-256/RSA-2048/RSA-3072 key. */
export function decodeSoftKey(pkcs8: Buffer): SoftKey {
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw new HalError('E_HAL_RECORD_CORRUPT', 'stored private key does not decode as PKCS#8', { cause: err });
  }
  const details = privateKey.asymmetricKeyDetails ?? {};
  let algorithm: KeyAlgorithm;
  if (privateKey.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') algorithm = 'P-256';
  else if (privateKey.asymmetricKeyType === 'rsa' && details.modulusLength === 2048) algorithm = 'RSA-2048';
  else if (privateKey.asymmetricKeyType === 'rsa' && details.modulusLength === 3072) algorithm = 'RSA-3072';
  else throw new HalError('E_HAL_RECORD_CORRUPT', `stored key is ${privateKey.asymmetricKeyType ?? 'unknown'}, not P-256, RSA-2048 or RSA-3072`);
  const spki = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return { algorithm, spki, privateKey };
}

/** Signs SHA-256 of `data`: DER ECDSA for P-256, RSASSA-PKCS1-v1_5 for RSA. */
export function signSoft(key: SoftKey, data: Buffer): Buffer {
  return crypto.sign('sha256', data, key.privateKey);
}

/** The key as a PKCS#8 PEM string, for an in-process TLS secure context. */
export function softKeyPem(key: SoftKey): string {
  return key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}
