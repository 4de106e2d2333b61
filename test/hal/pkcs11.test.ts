/**
 * PKCS#11 backend against a private SoftHSM2 token: the shared key suite,
 * proof the private key cannot be read out, config failures at start, and a
 * live mTLS series through the terminator with the key inside the token.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openHal } from '../../hal/config.ts';
import { isHalError } from '../../hal/errors.ts';
import { Pkcs11KeyStore } from '../../hal/pkcs11/pkcs11-key-store.ts';
import { FileRecordStore } from '../../hal/file/file-record-store.ts';
import { abstractKeyStoreTests } from './abstract-key-store.ts';
import { abstractRecordStoreTests } from './abstract-record-store.ts';
import { SOFTHSM_MODULE, startSoftHsm, type SoftHsm } from './support/softhsm.ts';
import { assertPrivateKeyNotExtractable } from './support/non-extractable.ts';
import { mtlsSeries } from './support/mtls.ts';
import { requireTools } from './support/tools.ts';

describe('hal/pkcs11 (SoftHSM2)', function () {
  this.timeout(60_000);
  let hsm: SoftHsm;
  let dir: string;
  const config = (over: Record<string, unknown> = {}) => ({
    keys: { backend: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: hsm.tokenLabel, pin: hsm.pin, moduleEnv: hsm.env, ...over },
    records: { backend: 'file', dir: path.join(dir, 'records') },
  });

  before(async () => {
    hsm = await startSoftHsm();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-pkcs11-'));
  });
  after(async () => {
    await hsm?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  abstractKeyStoreTests('pkcs11', () => ({ open: async () => (await openHal(config())).keys, algorithms: ['P-256', 'RSA-2048'], tlsKind: 'pkcs11' }));
  abstractRecordStoreTests('pkcs11 + file records', async () => {
    const hal = await openHal(config());
    return Object.assign(hal.records, { close: async () => void (await Promise.all([hal.keys.close(), FileRecordStore.prototype.close.call(hal.records)])) });
  });

  it('keeps the private key inside the token: it cannot be read, exported or wrapped', async () => {
    const { keys, records } = await openHal(config());
    try {
      assert.ok(keys instanceof Pkcs11KeyStore);
      await keys.create('sealed-in', 'P-256');
      await keys.create('sealed-in-rsa', 'RSA-2048');
      assertPrivateKeyNotExtractable(keys, 'sealed-in', 'refused');
      assertPrivateKeyNotExtractable(keys, 'sealed-in-rsa', 'refused');
    } finally {
      await keys.close();
      await records.close();
    }
  });

  it('fails at start with the setting to fix: missing token, wrong PIN, missing module, unreadable PIN file', async () => {
    const fails = async (over: Record<string, unknown>, code: string, setting: string) =>
      assert.rejects(openHal(config(over)), (e: unknown) => {
        assert.ok(isHalError(e), String(e));
        assert.equal(e.code, code, e.message);
        assert.equal(e.setting, setting);
        assert.ok(!e.message.includes(hsm.pin) || over.pin === undefined, 'PIN never in messages');
        return true;
      });
    await fails({ tokenLabel: 'no-such-token' }, 'E_HAL_TOKEN_MISSING', 'keys.tokenLabel');
    await fails({ pin: '000000' }, 'E_HAL_PIN', 'keys.pin');
    await fails({ module: '/nonexistent/libp11.so' }, 'E_HAL_CONFIG', 'keys.module');
    await fails({ pin: undefined, pinFile: path.join(dir, 'absent.pin') }, 'E_HAL_CONFIG', 'keys.pinFile');
    const pinFile = path.join(dir, 'user.pin');
    await fs.writeFile(pinFile, '999999\n', { mode: 0o600 });
    await fails({ pin: undefined, pinFile }, 'E_HAL_PIN', 'keys.pinFile');
  });

  it('authenticates a long series of mTLS reconnects with the token key through one terminator', async function () {
    this.timeout(90_000);
    requireTools('/usr/bin/stunnel4', '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so');
    const { keys, records } = await openHal(config());
    await keys.create('tls-device', 'P-256');
    const r = await mtlsSeries(keys, 'tls-device', 200);
    assert.equal(r.mode, 'terminator');
    console.log(`      SoftHSM2 mTLS: ${r.handshakes} full handshakes in ${r.ms.toFixed(0)} ms`);
    await keys.close();
    await records.close();
  });
});
