/**
 * File backend: the shared suites plus what only files have (modes, frame
 * check, no temp files left) and in-process mTLS with one reused context.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileKeyStore } from '../../hal/file/file-key-store.ts';
import { FileRecordStore } from '../../hal/file/file-record-store.ts';
import { isHalError } from '../../hal/errors.ts';
import { abstractKeyStoreTests } from './abstract-key-store.ts';
import { abstractRecordStoreTests } from './abstract-record-store.ts';
import { mtlsSeries } from './support/mtls.ts';

describe('hal/file', function () {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-file-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  abstractKeyStoreTests('file', () => ({ open: () => FileKeyStore.open(path.join(dir, 'keys')), algorithms: ['P-256', 'RSA-2048'], tlsKind: 'pem' }));
  abstractRecordStoreTests('file', () => FileRecordStore.open(path.join(dir, 'records')));

  describe('file specifics', () => {
    it('creates 0700 directories and 0600 files and leaves no temp files', async () => {
      const keys = await FileKeyStore.open(path.join(dir, 'modes', 'keys'));
      const records = await FileRecordStore.open(path.join(dir, 'modes', 'records'));
      await keys.create('device', 'P-256');
      await records.write('trust', Buffer.from('x'));
      for (const [d, f] of [['keys', 'device.key'], ['records', 'trust.rec']] as const) {
        const base = path.join(dir, 'modes', d);
        assert.equal((await fs.stat(base)).mode & 0o777, 0o700);
        assert.equal((await fs.stat(path.join(base, f))).mode & 0o777, 0o600);
        assert.deepEqual(await fs.readdir(base), [f]);
      }
      await keys.close();
      await records.close();
    });

    it('reports a damaged record file as E_HAL_RECORD_CORRUPT instead of returning garbage', async () => {
      const records = await FileRecordStore.open(path.join(dir, 'corrupt'));
      await records.write('state', Buffer.from('rotation step 3'));
      const f = path.join(dir, 'corrupt', 'state.rec');
      const data = await fs.readFile(f);
      data[data.length - 1]! ^= 0x01;
      await fs.writeFile(f, data);
      await assert.rejects(records.read('state'), (e: unknown) => isHalError(e, 'E_HAL_RECORD_CORRUPT'));
      await fs.writeFile(f, data.subarray(0, 10));
      await assert.rejects(records.read('state'), (e: unknown) => isHalError(e, 'E_HAL_RECORD_CORRUPT'));
      await records.close();
    });

    it('serves a live mTLS handshake series from one in-process secure context', async function () {
      this.timeout(30_000);
      const keys = await FileKeyStore.open(path.join(dir, 'tls'));
      await keys.create('device', 'P-256');
      const r = await mtlsSeries(keys, 'device', 50);
      assert.equal(r.mode, 'in-process');
      await keys.close();
    });
  });
});
