/**
 * TPM 2.0 backend against a private swtpm (behind tpm2-abrmd on a private
 * bus): the shared key suite, proof the private key stays in the TPM,
 * "TPM absent" at start, and a live mTLS series signed inside the TPM.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openHal } from '../../hal/config.ts';
import { isHalError } from '../../hal/errors.ts';
import { Pkcs11KeyStore } from '../../hal/pkcs11/pkcs11-key-store.ts';
import { provisionToken } from '../../hal/pkcs11/provision.ts';
import { DEFAULT_TPM2_PKCS11_MODULE, tpmModuleEnv } from '../../hal/tpm/tpm-key-store.ts';
import { abstractKeyStoreTests } from './abstract-key-store.ts';
import { startSwTpm, type SwTpm } from './support/swtpm.ts';
import { assertPrivateKeyNotExtractable } from './support/non-extractable.ts';
import { mtlsSeries } from './support/mtls.ts';
import { requireTools } from './support/tools.ts';

describe('hal/tpm (swtpm + tpm2-pkcs11)', function () {
  this.timeout(60_000);
  let tpm: SwTpm;
  let dir: string;
  const pin = '1357924680';
  const config = (over: Record<string, unknown> = {}) => ({
    keys: { backend: 'tpm', tcti: tpm.tcti, storeDir: path.join(dir, 'tpm2-pkcs11'), tokenLabel: 'printer', pin, ...over },
    records: { backend: 'file', dir: path.join(dir, 'records') },
  });

  before(async () => {
    requireTools(DEFAULT_TPM2_PKCS11_MODULE);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-tpm-'));
    tpm = await startSwTpm();
    process.env.DBUS_SESSION_BUS_ADDRESS = tpm.busAddress;
    const storeDir = path.join(dir, 'tpm2-pkcs11');
    await fs.mkdir(storeDir, { mode: 0o700 });
    await provisionToken({ module: DEFAULT_TPM2_PKCS11_MODULE, env: tpmModuleEnv({ tcti: tpm.tcti, storeDir }), tokenLabel: 'printer', soPin: '24681357', userPin: pin });
  });
  after(async () => {
    await tpm?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  abstractKeyStoreTests('tpm', () => ({ open: async () => (await openHal(config())).keys, algorithms: ['P-256', 'RSA-2048'], tlsKind: 'pkcs11' }));

  it('keeps the private key inside the TPM: it cannot be read, exported or wrapped', async () => {
    const { keys, records } = await openHal(config());
    try {
      assert.ok(keys instanceof Pkcs11KeyStore);
      assert.equal(keys.backend, 'tpm');
      await keys.create('tpm-sealed-in', 'P-256');
      await keys.create('tpm-sealed-in-rsa', 'RSA-2048');
      assertPrivateKeyNotExtractable(keys, 'tpm-sealed-in', 'accepted');
      assertPrivateKeyNotExtractable(keys, 'tpm-sealed-in-rsa', 'accepted');
    } finally {
      await keys.close();
      await records.close();
    }
  });

  it('fails at start naming keys.tcti when the TPM is absent or does not answer', async () => {
    for (const tcti of ['device:/dev/tpm-not-here', `swtpm:path=${dir}/no.sock`, 'tabrmd:bus_type=session,bus_name=com.intel.tss2.Tabrmd.absent']) {
      await assert.rejects(openHal(config({ tcti, storeDir: path.join(dir, `absent-${tcti.length}`) })), (e: unknown) => {
        assert.ok(isHalError(e, 'E_HAL_TPM_ABSENT'), String(e));
        assert.equal(e.setting, 'keys.tcti');
        return true;
      });
    }
  });

  it('authenticates a long series of mTLS reconnects with the TPM key through one terminator', async function () {
    this.timeout(120_000);
    requireTools('/usr/bin/stunnel4', '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so');
    const { keys, records } = await openHal(config());
    await keys.create('tls-device', 'P-256');
    const r = await mtlsSeries(keys, 'tls-device', 100);
    assert.equal(r.mode, 'terminator');
    console.log(`      TPM mTLS: ${r.handshakes} full handshakes in ${r.ms.toFixed(0)} ms`);
    await keys.close();
    await records.close();
  });
});
