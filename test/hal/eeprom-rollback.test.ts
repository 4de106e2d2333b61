/**
 * Roll-back detection of the EEPROM A/B store: when the slot holding the
 * newest image is damaged (a flipped bit, a zeroed page, a bad header) the
 * older image is adopted, and the store says so (`integrity().rolledBack`,
 * with the writes lost) instead of passing the old image off as current.
 * Damage to the older slot or to one commit-counter copy is not a
 * roll-back. Generations keep counting from the adopted image, so the
 * report clears once the lost writes are made again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileByteDevice, type EepromGeometry } from '../../hal/eeprom/byte-device.ts';
import { AbStore } from '../../hal/eeprom/ab-store.ts';
import { EepromRecordStore } from '../../hal/eeprom/eeprom-record-store.ts';
import { DAMAGE_KINDS, damageSlot } from '../faults/support/eeprom-damage.ts';

const G: EepromGeometry = { size: 4096, pageSize: 64, writeGranularity: 4 };

async function open(file: string) {
  const ab = await AbStore.open(await FileByteDevice.open(file, G));
  return { ab, records: new EepromRecordStore(ab, () => ab.close()) };
}

describe('hal/eeprom roll-back detection', function () {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-rollback-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function threeWrites(file: string): Promise<void> {
    const s = await open(file);
    for (const v of ['one', 'two', 'three']) await s.records.write('state', Buffer.from(v.repeat(40)));
    assert.equal(s.records.integrity().rolledBack, false);
    await s.records.close();
  }

  for (const kind of DAMAGE_KINDS) {
    it(`${kind} in the newer slot: the older image is loaded and reported as a roll-back, until the lost write is made again`, async () => {
      const file = path.join(dir, `newer-${kind}.bin`);
      await threeWrites(file);
      damageSlot(file, G, 'newer', kind, 3);
      const s = await open(file);
      assert.equal((await s.records.read('state'))!.toString(), 'two'.repeat(40));
      const i = s.records.integrity();
      assert.equal(i.rolledBack, true, i.detail);
      assert.equal(i.lostWrites, 1);
      assert.equal(i.committedGeneration, 3);
      assert.equal(i.loadedGeneration, 2);
      assert.match(i.detail, /roll-back.*generation 3.*generation 2/);
      // Still reported after a restart without repair.
      await s.records.close();
      const again = await open(file);
      assert.equal(again.records.integrity().rolledBack, true);
      await again.records.write('state', Buffer.from('three'.repeat(40)));
      assert.equal(again.records.integrity().rolledBack, false);
      await again.records.close();
      const repaired = await open(file);
      assert.equal(repaired.records.integrity().rolledBack, false);
      assert.equal((await repaired.records.read('state'))!.toString(), 'three'.repeat(40));
      await repaired.records.close();
    });

    it(`${kind} in the older slot: the newest image is loaded, no roll-back`, async () => {
      const file = path.join(dir, `older-${kind}.bin`);
      await threeWrites(file);
      damageSlot(file, G, 'older', kind, 5);
      const s = await open(file);
      assert.equal((await s.records.read('state'))!.toString(), 'three'.repeat(40));
      assert.equal(s.records.integrity().rolledBack, false);
      await s.records.close();
    });
  }

  it('a damaged newest first write (the other slot blank) is a roll-back to nothing, not a fresh store', async () => {
    const file = path.join(dir, 'first.bin');
    const s = await open(file);
    await s.records.write('key', Buffer.from('k'.repeat(60)));
    await s.records.close();
    const img = await fs.readFile(file);
    img.writeUInt32BE(0, 0); // slot A's header
    await fs.writeFile(file, img);
    const r = await open(file);
    assert.equal(await r.records.read('key'), null);
    assert.equal(r.records.integrity().rolledBack, true);
    assert.equal(r.records.integrity().lostWrites, 1);
    await r.records.close();
  });

  it('one damaged commit-counter copy is not a roll-back; both damaged means "cannot tell", not an error', async () => {
    const file = path.join(dir, 'counters.bin');
    await threeWrites(file);
    const img = await fs.readFile(file);
    img.fill(0, G.size / 2 - G.pageSize, G.size / 2); // counter copy in slot A's last page
    await fs.writeFile(file, img);
    let s = await open(file);
    assert.equal(s.records.integrity().rolledBack, false);
    assert.equal(s.records.integrity().committedGeneration, 3);
    await s.records.close();
    img.fill(0, G.size - G.pageSize, G.size);
    await fs.writeFile(file, img);
    s = await open(file);
    assert.equal(s.records.integrity().rolledBack, false);
    assert.equal(s.records.integrity().committedGeneration, null);
    assert.match(s.records.integrity().detail, /cannot be ruled out/);
    assert.equal((await s.records.read('state'))!.toString(), 'three'.repeat(40));
    await s.records.close();
  });

  it('room() is what one more value under that name may take', async () => {
    const file = path.join(dir, 'room.bin');
    const s = await open(file);
    await s.records.write('other', Buffer.alloc(100, 1));
    const room = s.records.room('state');
    await s.records.write('state', Buffer.alloc(room, 2));
    await assert.rejects(s.records.write('state', Buffer.alloc(room + 1, 2)), /E_HAL_STORAGE_FULL/);
    await s.records.close();
  });
});
