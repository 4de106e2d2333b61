/**
 * EEPROM backend: the shared suites (records; keys plain and sealed) plus
 * what only a byte device has: page-bounded programming, capacity, sealing
 * at rest, and both slots failing.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileByteDevice, type ByteDevice, type EepromGeometry } from '../../hal/eeprom/byte-device.ts';
import { AbStore } from '../../hal/eeprom/ab-store.ts';
import { EepromRecordStore } from '../../hal/eeprom/eeprom-record-store.ts';
import { EepromKeyStore, type EepromKeyProtection } from '../../hal/eeprom/eeprom-key-store.ts';
import { isHalError, type HalErrorCode } from '../../hal/errors.ts';
import { abstractKeyStoreTests } from './abstract-key-store.ts';
import { abstractRecordStoreTests } from './abstract-record-store.ts';

const GEOMETRY: EepromGeometry = { size: 32768, pageSize: 64, writeGranularity: 4 };
const is = (code: HalErrorCode) => (e: unknown) => isHalError(e, code);

async function openKeys(file: string, protection: EepromKeyProtection): Promise<EepromKeyStore> {
  const ab = await AbStore.open(await FileByteDevice.open(file, GEOMETRY));
  return new EepromKeyStore(ab, protection, () => ab.close());
}

async function privateScalar(keys: EepromKeyStore, label: string): Promise<Buffer> {
  const ref = await keys.tlsKey(label);
  assert.equal(ref.kind, 'pem');
  const jwk = crypto.createPrivateKey(ref.kind === 'pem' ? ref.keyPem : '').export({ format: 'jwk' });
  return Buffer.from(jwk.d!, 'base64url');
}

describe('hal/eeprom', function () {
  let dir: string;
  const kek = crypto.randomBytes(32);
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-eeprom-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  abstractRecordStoreTests('eeprom', async () => {
    const ab = await AbStore.open(await FileByteDevice.open(path.join(dir, 'records.bin'), GEOMETRY));
    return new EepromRecordStore(ab, () => ab.close());
  });
  abstractKeyStoreTests('eeprom (plain keys)', () => ({
    open: () => openKeys(path.join(dir, 'keys-plain.bin'), { mode: 'plain' }),
    algorithms: ['P-256', 'RSA-2048'],
    tlsKind: 'pem',
  }));
  abstractKeyStoreTests('eeprom (sealed keys)', () => ({
    open: () => openKeys(path.join(dir, 'keys-sealed.bin'), { mode: 'sealed', kek: Buffer.from(kek) }),
    algorithms: ['P-256', 'RSA-2048'],
    tlsKind: 'pem',
  }));

  describe('eeprom specifics', () => {
    it('plain keys are readable from a chip dump; sealed keys are not, and need the right KEK', async () => {
      const plainFile = path.join(dir, 'dump-plain.bin');
      const plain = await openKeys(plainFile, { mode: 'plain' });
      await plain.create('device', 'P-256');
      const d1 = await privateScalar(plain, 'device');
      await plain.close();
      assert.ok((await fs.readFile(plainFile)).includes(d1), 'plain mode stores the private scalar as is');

      const sealedFile = path.join(dir, 'dump-sealed.bin');
      const sealed = await openKeys(sealedFile, { mode: 'sealed', kek: Buffer.from(kek) });
      await sealed.create('device', 'P-256');
      const d2 = await privateScalar(sealed, 'device');
      await sealed.close();
      assert.ok(!(await fs.readFile(sealedFile)).includes(d2), 'sealed mode never stores the private scalar');

      const wrong = await openKeys(sealedFile, { mode: 'sealed', kek: crypto.randomBytes(32) });
      await assert.rejects(wrong.sign('device', Buffer.alloc(32)), is('E_HAL_UNSEAL'));
      await wrong.close();
      const noKek = await openKeys(sealedFile, { mode: 'plain' });
      await assert.rejects(noKek.get('device'), is('E_HAL_UNSEAL'));
      await noKek.close();
    });

    it('programs in page-bounded, granule-aligned operations', async () => {
      const inner = await FileByteDevice.open(path.join(dir, 'spy.bin'), GEOMETRY);
      const ops: Array<[number, number]> = [];
      const spy: ByteDevice = Object.assign(Object.create(inner) as ByteDevice, {
        write: async (offset: number, data: Buffer) => {
          ops.push([offset, data.length]);
          return inner.write(offset, data);
        },
      });
      const ab = await AbStore.open(spy);
      const rec = new EepromRecordStore(ab, () => ab.close());
      await rec.write('trust', crypto.randomBytes(500));
      await rec.close();
      assert.ok(ops.length >= 2);
      for (const [off, len] of ops) {
        assert.equal(off % GEOMETRY.writeGranularity, 0);
        assert.equal(len % GEOMETRY.writeGranularity, 0);
      }
    });

    it('refuses records that do not fit a slot with E_HAL_STORAGE_FULL and keeps the old value', async () => {
      const ab = await AbStore.open(await FileByteDevice.open(path.join(dir, 'full.bin'), GEOMETRY));
      const rec = new EepromRecordStore(ab, () => ab.close());
      await rec.write('trust', Buffer.from('small'));
      await assert.rejects(rec.write('trust', Buffer.alloc(GEOMETRY.size / 2)), is('E_HAL_STORAGE_FULL'));
      assert.equal((await rec.read('trust'))!.toString(), 'small');
      await rec.close();
    });

    it('fails with E_HAL_RECORD_CORRUPT when both slots are damaged, rather than start empty', async () => {
      const file = path.join(dir, 'both.bin');
      let ab = await AbStore.open(await FileByteDevice.open(file, GEOMETRY));
      await ab.set('r:a', Buffer.from('1'));
      await ab.set('r:a', Buffer.from('2'));
      await ab.close();
      const img = await fs.readFile(file);
      img[20]! ^= 0xff;
      img[GEOMETRY.size / 2 + 20]! ^= 0xff;
      await fs.writeFile(file, img);
      const refused = await FileByteDevice.open(file, GEOMETRY);
      await assert.rejects(AbStore.open(refused), is('E_HAL_RECORD_CORRUPT'));
      await assert.rejects(refused.read(0, 1), 'the store closed the device it refused (no file handle left to the garbage collector)');
      img[20]! ^= 0xff; // repair slot A only: its image is used
      await fs.writeFile(file, img);
      ab = await AbStore.open(await FileByteDevice.open(file, GEOMETRY));
      assert.ok(ab.get('r:a'));
      await ab.close();
    });

    it('names the eeprom setting that is wrong', async () => {
      const f = path.join(dir, 'geom.bin');
      await assert.rejects(FileByteDevice.open(f, { ...GEOMETRY, pageSize: 48 }), (e: unknown) => isHalError(e, 'E_HAL_CONFIG') && e.setting === 'eeprom.pageSize');
      await assert.rejects(FileByteDevice.open(f, { ...GEOMETRY, writeGranularity: 128 }), (e: unknown) => isHalError(e, 'E_HAL_CONFIG') && e.setting === 'eeprom.writeGranularity');
      await (await FileByteDevice.open(f, GEOMETRY)).close();
      await assert.rejects(FileByteDevice.open(f, { ...GEOMETRY, size: 65536 }), (e: unknown) => isHalError(e, 'E_HAL_CONFIG') && e.setting === 'eeprom.size');
    });
  });
});
