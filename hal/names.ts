/**
 * Validation of key labels and record names. Both become file names (file
 * backend), PKCS#11 CKA_LABEL values and EEPROM record keys, so one rule
 * keeps them portable: 1-64 characters from [A-Za-z0-9._-], not starting
 * with a dot (no hidden files, no "..").
 */
import { HalError } from './errors.ts';

const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** Throws E_HAL_NAME unless `name` is a valid key label or record name. */
export function assertName(name: string, what: 'key label' | 'record name'): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new HalError('E_HAL_NAME', `${what} ${JSON.stringify(String(name).slice(0, 80))} must match ${NAME_RE.source}`);
  }
}

/** Largest input `sign` accepts (a CSR or TBS is a few hundred bytes). */
export const MAX_SIGN_INPUT = 64 * 1024;

/** Throws E_HAL_SIGN_INPUT unless `data` is a non-empty buffer of at most MAX_SIGN_INPUT bytes. */
export function assertSignInput(data: Buffer): void {
  if (!Buffer.isBuffer(data) || data.length === 0 || data.length > MAX_SIGN_INPUT) {
    throw new HalError('E_HAL_SIGN_INPUT', `got ${Buffer.isBuffer(data) ? `${data.length} bytes` : typeof data}; expected 1 to ${MAX_SIGN_INPUT} bytes`);
  }
}
