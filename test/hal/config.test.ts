/**
 * Config validation and the openHal factory: bad settings fail at start with
 * the setting named; a shared EEPROM serves keys and records; every error
 * code is documented in docs/hal.md exactly once.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkHalConfig, openHal } from '../../hal/config.ts';
import { HAL_ERROR_CODES, isHalError } from '../../hal/errors.ts';

function failsWith(config: unknown, code: string, setting: string): void {
  assert.throws(() => checkHalConfig(config), (e: unknown) => {
    assert.ok(isHalError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.setting, setting, e.message);
    assert.ok(e.message.includes(setting), 'message names the setting');
    return true;
  });
}

describe('hal/config', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-config-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  const files = () => ({ keys: { backend: 'file', dir: `${dir}/k` }, records: { backend: 'file', dir: `${dir}/r` } });

  it('accepts a valid config', () => {
    assert.equal(checkHalConfig(files()).keys.backend, 'file');
  });

  it('names an unknown backend', () => {
    failsWith({ ...files(), keys: { backend: 'yubikey' } }, 'E_HAL_BACKEND_UNKNOWN', 'keys.backend');
    failsWith({ ...files(), records: { backend: 'nvram', dir: 'x' } }, 'E_HAL_BACKEND_UNKNOWN', 'records.backend');
  });

  it('names missing, unknown and conflicting settings without echoing secrets', () => {
    failsWith({ records: files().records }, 'E_HAL_CONFIG', 'keys');
    failsWith({ ...files(), keys: { backend: 'pkcs11', module: '/x.so', pin: 'secret-1234' } }, 'E_HAL_CONFIG', 'keys.tokenLabel');
    failsWith({ ...files(), keys: { backend: 'file', dir: 'x', colour: 'red' } }, 'E_HAL_CONFIG', 'keys.colour');
    failsWith({ ...files(), keys: { backend: 'tpm', tcti: 'device:/dev/tpmrm0', storeDir: '/s', tokenLabel: 't' } }, 'E_HAL_CONFIG', 'keys.pin / keys.pinFile');
    failsWith({ ...files(), keys: { backend: 'pkcs11', module: '/x.so', tokenLabel: 't', pin: '1', pinFile: '/p' } }, 'E_HAL_CONFIG', 'keys.pin / keys.pinFile');
    failsWith({ ...files(), keys: { backend: 'eeprom', protection: 'sealed' } }, 'E_HAL_CONFIG', 'keys.kekFile');
    failsWith({ ...files(), records: { backend: 'eeprom' } }, 'E_HAL_CONFIG', 'eeprom');
    failsWith({ ...files(), eeprom: { device: '/d', size: 'big', pageSize: 64, writeGranularity: 1 } }, 'E_HAL_CONFIG', 'eeprom.size');
    try {
      checkHalConfig({ ...files(), keys: { backend: 'pkcs11', module: '/x.so', pin: 'secret-1234' } });
    } catch (e) {
      assert.ok(!(e as Error).message.includes('secret-1234'));
    }
  });

  it('opens sealed EEPROM keys and EEPROM records on one shared chip', async () => {
    const kekFile = path.join(dir, 'kek');
    await fs.writeFile(kekFile, crypto.randomBytes(32), { mode: 0o600 });
    const config = {
      keys: { backend: 'eeprom', protection: 'sealed', kekFile },
      records: { backend: 'eeprom' },
      eeprom: { device: path.join(dir, 'chip.bin'), size: 16384, pageSize: 64, writeGranularity: 4 },
    };
    let hal = await openHal(config);
    const info = await hal.keys.create('device', 'P-256');
    await hal.records.write('trust', Buffer.from('roots'));
    await hal.keys.close();
    await hal.records.write('state', Buffer.from('after keys closed')); // device stays open for records
    await hal.records.close();
    hal = await openHal(config);
    assert.ok((await hal.keys.get('device'))!.spki.equals(info.spki));
    assert.equal((await hal.records.read('trust'))!.toString(), 'roots');
    assert.equal((await hal.records.read('state'))!.toString(), 'after keys closed');
    await hal.keys.close();
    await hal.records.close();
    await fs.writeFile(kekFile, Buffer.alloc(31));
    await assert.rejects(openHal(config), (e: unknown) => isHalError(e, 'E_HAL_CONFIG') && e.setting === 'keys.kekFile');
  });

  it('documents every error code in docs/hal.md, each exactly once', async () => {
    const doc = await fs.readFile(new URL('../../docs/hal.md', import.meta.url), 'utf8');
    for (const code of Object.keys(HAL_ERROR_CODES)) {
      const rows = doc.split('\n').filter((l) => l.startsWith(`| \`${code}\``));
      assert.equal(rows.length, 1, `${code} documented once in the error table`);
    }
    const documented = [...doc.matchAll(/^\| `(E_HAL_[A-Z_]+)`/gm)].map((m) => m[1]);
    assert.deepEqual(documented.filter((c) => !(c! in HAL_ERROR_CODES)), [], 'no documented code is unknown');
  });
});
