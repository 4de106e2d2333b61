/**
 * Opening a logged-in session on the token with a given label, mapping
 * PKCS#11 failures to the HAL's config errors (missing token, wrong PIN).
 */
import crypto from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { HalError } from '../errors.ts';
import { ckr } from './module.ts';

const PIN_ERRORS = new Set([pkcs11js.CKR_PIN_INCORRECT, pkcs11js.CKR_PIN_LEN_RANGE, pkcs11js.CKR_PIN_LOCKED, pkcs11js.CKR_PIN_INVALID, pkcs11js.CKR_PIN_EXPIRED]);

/** A token's label without the blank (or NUL) padding of the fixed 32-byte field. */
export function tokenLabelOf(info: pkcs11js.TokenInfo): string {
  return info.label.replace(/[\s\0]+$/, '');
}

/** Finds the slot whose token is labelled `tokenLabel`; E_HAL_TOKEN_MISSING if none. */
export function findTokenSlot(p11: pkcs11js.PKCS11, tokenLabel: string): Buffer {
  const labels: string[] = [];
  for (const slot of p11.C_GetSlotList(true)) {
    const info = p11.C_GetTokenInfo(slot);
    const label = tokenLabelOf(info);
    if (label === tokenLabel && info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) return slot;
    if (label) labels.push(label);
  }
  throw new HalError('E_HAL_TOKEN_MISSING', `no initialized token labelled "${tokenLabel}" (present: ${labels.map((l) => `"${l}"`).join(', ') || 'none'})`, {
    setting: 'keys.tokenLabel',
  });
}

/**
 * PKCS#11 login state is per application, not per session: while one
 * session is logged in, C_Login on another returns USER_ALREADY_LOGGED_IN
 * without checking the PIN. So the HAL remembers a salted hash of the PIN
 * that logged each token in and compares it itself.
 */
const loginPins = new Map<string, { salt: Buffer; hash: Buffer }>();

function pinHash(salt: Buffer, pin: string): Buffer {
  return crypto.createHash('sha256').update(salt).update(pin, 'utf8').digest();
}

/** Opens an R/W session and logs in as user. `pinSetting` is named if the PIN is refused. */
export function openUserSession(p11: pkcs11js.PKCS11, slot: Buffer, pin: string, pinSetting: string): Buffer {
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  const info = p11.C_GetTokenInfo(slot);
  const tokenKey = `${tokenLabelOf(info)}/${info.serialNumber.trim()}`;
  try {
    p11.C_Login(session, pkcs11js.CKU_USER, pin);
    const salt = crypto.randomBytes(16);
    loginPins.set(tokenKey, { salt, hash: pinHash(salt, pin) });
  } catch (err) {
    const code = ckr(err);
    const known = loginPins.get(tokenKey);
    if (code === pkcs11js.CKR_USER_ALREADY_LOGGED_IN && known && crypto.timingSafeEqual(known.hash, pinHash(known.salt, pin))) return session;
    p11.C_CloseSession(session);
    if (code === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
      throw new HalError('E_HAL_PIN', 'token is already logged in with a different PIN in this process', { setting: pinSetting });
    }
    if (code !== undefined && PIN_ERRORS.has(code)) {
      throw new HalError('E_HAL_PIN', `token refused the user PIN (${(err as Error).message})`, { setting: pinSetting, cause: err });
    }
    throw new HalError('E_HAL_IO', `C_Login failed: ${(err as Error).message}`, { cause: err });
  }
  return session;
}
