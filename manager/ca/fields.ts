/**
 * Small value rules shared by every certificate the CA makes: serial
 * numbers and validity dates at X.509 precision.
 */
import { randomBytes } from 'node:crypto';
import { CaError } from './errors.ts';

const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let poolAt = 0;

/**
 * A 128-bit positive serial: 16 CSPRNG octets, high bit clear, first octet
 * non-zero (so always 16 octets of DER). Drawn from a 4 KiB buffer of
 * randomBytes output, refilled when used up, to keep one syscall per 256
 * serials on the issuance path.
 */
export function randomSerial(): Buffer {
  for (;;) {
    if (poolAt + 16 > pool.length) {
      pool = randomBytes(POOL_SIZE);
      poolAt = 0;
    }
    const serial = Buffer.from(pool.subarray(poolAt, poolAt + 16));
    pool.fill(0, poolAt, poolAt + 16);
    poolAt += 16;
    serial[0]! &= 0x7f;
    if (serial[0] !== 0) return serial;
  }
}

/** Truncate to whole seconds, the precision of X.509 times; E_CA_VALIDITY for an invalid Date. */
export function toSeconds(date: Date): Date {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new CaError('E_CA_VALIDITY', 'a validity date is not a valid Date');
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** Both dates truncated to seconds; E_CA_VALIDITY unless notBefore < notAfter. */
export function checkedValidity(notBefore: Date, notAfter: Date): { notBefore: Date; notAfter: Date } {
  const from = toSeconds(notBefore);
  const to = toSeconds(notAfter);
  if (to <= from) throw new CaError('E_CA_VALIDITY', `notAfter ${to.toISOString()} is not after notBefore ${from.toISOString()}`);
  return { notBefore: from, notAfter: to };
}
