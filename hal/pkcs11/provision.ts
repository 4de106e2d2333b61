/**
 * One-time token provisioning (factory or first boot): initialize a free
 * token with a label and SO PIN, then set the user PIN. The agent never
 * calls this; openHal fails with E_HAL_TOKEN_MISSING until it has run.
 * Works for SoftHSM2 and for tpm2-pkcs11 (whose empty slot accepts
 * C_InitToken).
 */
import pkcs11js from 'pkcs11js';
import { HalError, asHalError } from '../errors.ts';
import { acquireModule, releaseModule } from './module.ts';
import { findTokenSlot, tokenLabelOf } from './session.ts';

/** What `provisionToken` needs. PINs are secrets and are never logged. */
export interface ProvisionOptions {
  readonly module: string;
  readonly env: Readonly<Record<string, string>>;
  readonly tokenLabel: string;
  readonly soPin: string;
  readonly userPin: string;
}

/** Initializes the first uninitialized token as `tokenLabel`; E_HAL_CONFIG if a token already has that label. */
export async function provisionToken(o: ProvisionOptions): Promise<void> {
  const p11 = acquireModule(o.module, o.env, { code: 'E_HAL_CONFIG', setting: 'keys.module' });
  try {
    const slots = p11.C_GetSlotList(true);
    if (slots.some((s) => tokenLabelOf(p11.C_GetTokenInfo(s)) === o.tokenLabel)) {
      throw new HalError('E_HAL_CONFIG', `a token labelled "${o.tokenLabel}" already exists`, { setting: 'keys.tokenLabel' });
    }
    const free = slots.find((s) => (p11.C_GetTokenInfo(s).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
    if (free === undefined) throw new HalError('E_HAL_TOKEN_MISSING', 'the module offers no uninitialized token to provision', { setting: 'keys.module' });
    p11.C_InitToken(free, o.soPin, o.tokenLabel.padEnd(32, ' '));
    const slot = findTokenSlot(p11, o.tokenLabel);
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      p11.C_Login(session, pkcs11js.CKU_SO, o.soPin);
      p11.C_InitPIN(session, o.userPin);
      p11.C_Logout(session);
    } finally {
      p11.C_CloseSession(session);
    }
  } catch (err) {
    throw err instanceof HalError ? err : asHalError(err, `provisioning token ${o.tokenLabel}`);
  } finally {
    releaseModule(o.module);
  }
}
