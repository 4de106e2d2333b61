/**
 * The shared RecordStore suite: every backend runs exactly these tests.
 * `open` must open the same storage each time (for the restart test).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { RecordStore } from '../../hal/record-store.ts';
import { isHalError } from '../../hal/errors.ts';

/** Registers the shared record store tests under `describe(name)`. */
export function abstractRecordStoreTests(name: string, open: () => Promise<RecordStore>): void {
  describe(`RecordStore contract: ${name}`, function () {
    this.timeout(30_000);
    let store: RecordStore;
    let n = 0;
    const rec = (p: string) => `${p}-${++n}`;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('reads null for a record never written', async () => {
      assert.equal(await store.read(rec('never')), null);
    });

    it('reads back exactly what was written, including empty and binary values', async () => {
      const a = rec('bin');
      const value = crypto.randomBytes(700);
      await store.write(a, value);
      assert.ok((await store.read(a))!.equals(value));
      const e = rec('empty');
      await store.write(e, Buffer.alloc(0));
      const got = await store.read(e);
      assert.ok(got !== null && got.length === 0, 'empty value is not "nothing"');
    });

    it('replaces a value and removes it; removing twice is harmless', async () => {
      const a = rec('rw');
      await store.write(a, Buffer.from('v1'));
      await store.write(a, Buffer.from('version two'));
      assert.equal((await store.read(a))!.toString(), 'version two');
      await store.remove(a);
      assert.equal(await store.read(a), null);
      await store.remove(a);
    });

    it('does not let a caller mutate the stored value through its buffers', async () => {
      const a = rec('alias');
      const v = Buffer.from('original');
      await store.write(a, v);
      v.fill(0);
      const r1 = (await store.read(a))!;
      r1.fill(0);
      assert.equal((await store.read(a))!.toString(), 'original');
    });

    it('keeps records across close and reopen', async () => {
      const a = rec('persist');
      await store.write(a, Buffer.from('trust store v7'));
      await store.close();
      store = await open();
      assert.equal((await store.read(a))!.toString(), 'trust store v7');
    });

    it('persists every one of several concurrent writes', async () => {
      const names = Array.from({ length: 6 }, () => rec('conc'));
      await Promise.all(names.map((nm, i) => store.write(nm, Buffer.from(`value ${i}`))));
      await store.close();
      store = await open();
      for (const [i, nm] of names.entries()) assert.equal((await store.read(nm))!.toString(), `value ${i}`);
    });

    it('rejects names that could escape the store with E_HAL_NAME', async () => {
      for (const bad of ['../x', '.hidden', '', 'a/b', 'x'.repeat(65)]) {
        await assert.rejects(Promise.resolve().then(() => store.write(bad, Buffer.from('x'))), (err: unknown) => isHalError(err, 'E_HAL_NAME'));
      }
    });
  });
}
