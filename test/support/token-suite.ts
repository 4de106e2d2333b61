/**
 * Mocha wiring for tests that need a device key inside a real PKCS#11
 * token: a SoftHSM2 token and an opened PKCS#11 key store for the
 * enclosing `describe`, a scratch folder, and closers run in reverse order
 * after the suite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHal } from '../../hal/config.ts';
import type { KeyStore } from '../../hal/key-store.ts';
import { startSoftHsm, SOFTHSM_MODULE, type SoftHsm } from '../hal/support/softhsm.ts';

/** What a token suite gets: call the getters inside tests (they are set in `before`). */
export interface TokenSuite {
  token(): KeyStore;
  dir(): string;
  /** Cleanup to run after the suite, last registered first. */
  closers: (() => Promise<unknown> | unknown)[];
}

/** Register before/after hooks that start SoftHSM2 with `tokenLabel` and open a PKCS#11 key store on it. */
export function tokenSuite(tokenLabel: string): TokenSuite {
  let hsm: SoftHsm | undefined;
  let dir = '';
  let token: KeyStore | undefined;
  const closers: TokenSuite['closers'] = [];
  before(async () => {
    hsm = await startSoftHsm(tokenLabel);
    dir = mkdtempSync(join(tmpdir(), `trustroll-${tokenLabel}-`));
    token = (await openHal({ keys: { backend: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: hsm.tokenLabel, pin: hsm.pin, moduleEnv: hsm.env }, records: { backend: 'file', dir: join(dir, 'records') } })).keys;
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
    await token?.close();
    await hsm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return { token: () => token!, dir: () => dir, closers };
}
