/**
 * Sealing of software private keys at rest with AES-256-GCM under a
 * key-encryption key (KEK) that does not live on the same part: e.g. a key
 * derived from SoC OTP fuses or a hardware unique key. The blob is
 * iv (12) | tag (16) | ciphertext and is bound to its key label as AAD, so
 * a blob moved to another label does not unseal.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { HalError } from '../errors.ts';

/** Reads a 32-byte KEK file; E_HAL_CONFIG naming `setting` if unusable. */
export async function readKek(file: string, setting: string): Promise<Buffer> {
  let kek: Buffer;
  try {
    kek = await fs.readFile(file);
  } catch (err) {
    throw new HalError('E_HAL_CONFIG', `cannot read KEK file ${file}: ${(err as Error).message}`, { setting, cause: err });
  }
  if (kek.length !== 32) throw new HalError('E_HAL_CONFIG', `KEK file ${file} must hold exactly 32 bytes, has ${kek.length}`, { setting });
  return kek;
}

/** Encrypts `secret` under `kek`, bound to `label`. */
export function seal(kek: Buffer, label: string, secret: Buffer): Buffer {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', kek, iv);
  c.setAAD(Buffer.from(label, 'utf8'));
  const ct = Buffer.concat([c.update(secret), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]);
}

/** Decrypts a sealed blob; E_HAL_UNSEAL if the KEK is wrong or the blob was altered. */
export function unseal(kek: Buffer, label: string, blob: Buffer): Buffer {
  if (blob.length < 29) throw new HalError('E_HAL_UNSEAL', `sealed key ${label} is truncated`);
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', kek, blob.subarray(0, 12));
    d.setAAD(Buffer.from(label, 'utf8'));
    d.setAuthTag(blob.subarray(12, 28));
    return Buffer.concat([d.update(blob.subarray(28)), d.final()]);
  } catch (err) {
    throw new HalError('E_HAL_UNSEAL', `sealed key ${label} failed authentication (wrong KEK or altered blob)`, { setting: 'keys.kekFile', cause: err });
  }
}
