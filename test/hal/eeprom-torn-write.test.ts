/**
 * Power loss at every byte of an EEPROM record update, into slot A and into
 * slot B: after restart the store must return the old or the new record,
 * never garbage and never nothing, and must keep working.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileByteDevice, type EepromGeometry } from '../../hal/eeprom/byte-device.ts';
import { AbStore } from '../../hal/eeprom/ab-store.ts';
import { EepromRecordStore } from '../../hal/eeprom/eeprom-record-store.ts';
import { PowerCut, PowerCutDevice } from './support/power-cut.ts';

const OLD = Buffer.from('trust-store v1: ' + 'A'.repeat(150));
const NEW = Buffer.from('trust-store v2 (after root rotation): ' + 'B'.repeat(170));
const OTHER = Buffer.from('agent-state: step=ACTIVE');

async function openStore(file: string, g: EepromGeometry, cutAt = Infinity) {
  const dev = new PowerCutDevice(await FileByteDevice.open(file, g), cutAt);
  const ab = await AbStore.open(dev);
  return { dev, ab, records: new EepromRecordStore(ab, () => ab.close()) };
}

for (const g of [
  { size: 2048, pageSize: 32, writeGranularity: 1 },
  { size: 4096, pageSize: 64, writeGranularity: 4 },
] satisfies EepromGeometry[]) {
  describe(`hal/eeprom torn writes (page ${g.pageSize}, granule ${g.writeGranularity})`, function () {
    this.timeout(60_000);
    let dir: string;
    before(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-torn-'));
    });
    after(async () => {
      await fs.rm(dir, { recursive: true, force: true });
    });

    for (const target of ['B', 'A'] as const) {
      it(`survives a cut at every byte offset of an update into slot ${target}`, async () => {
        const file = path.join(dir, `eeprom-${target}.bin`);
        const s = await openStore(file, g);
        await s.records.write('state', OTHER);
        await s.records.write('trust', OLD); // generation 2, slot B
        if (target === 'B') await s.records.write('state', OTHER); // generation 3 in slot A: next update goes to B
        const expectedTarget = s.ab.currentSlot === 'A' ? 'B' : 'A';
        assert.equal(expectedTarget, target);
        await s.records.close();
        const base = await fs.readFile(file);

        // How many bytes does the update program?
        await fs.writeFile(file, base);
        const probe = await openStore(file, g);
        await probe.records.write('trust', NEW);
        const total = probe.dev.written;
        // The image is committed once its header is programmed; the commit counter copies (one page-aligned granule run each) follow.
        const counterBytes = 2 * Math.ceil(12 / g.writeGranularity) * g.writeGranularity;
        const committedAt = total - counterBytes;
        await probe.records.close();
        assert.ok(total > NEW.length, `update programs ${total} bytes`);

        let oldSeen = 0;
        for (let cut = 0; cut <= total; cut++) {
          await fs.writeFile(file, base);
          const before = await openStore(file, g, cut);
          const wrote = await before.records.write('trust', NEW).then(
            () => true,
            (err: unknown) => {
              assert.ok(err instanceof PowerCut, `cut ${cut}: unexpected ${String(err)}`);
              return false;
            },
          );
          assert.equal(wrote, cut === total, `cut ${cut} of ${total}`);
          await before.dev.close();

          const after = await openStore(file, g); // restart
          const got = await after.records.read('trust');
          assert.ok(got !== null, `cut ${cut}: record vanished`);
          const isOld = got.equals(OLD);
          assert.ok(isOld || got.equals(NEW), `cut ${cut}: garbage read back`);
          if (cut >= committedAt) assert.ok(!isOld, `cut ${cut}: committed update must be visible`);
          if (isOld) oldSeen++;
          // A cut is never mistaken for a roll-back of acknowledged data.
          assert.equal(after.records.integrity().rolledBack, false, `cut ${cut}: ${after.records.integrity().detail}`);
          assert.ok((await after.records.read('state'))!.equals(OTHER), `cut ${cut}: other record damaged`);
          // The store keeps working after the cut, across another restart.
          await after.records.write('trust', NEW);
          await after.records.close();
          const again = await openStore(file, g);
          assert.ok((await again.records.read('trust'))!.equals(NEW), `cut ${cut}: store unusable after restart`);
          await again.records.close();
        }
        assert.equal(oldSeen, committedAt, 'every update interrupted before its header is complete leaves the old record');
      });
    }

    it('a cut during the very first write leaves an empty store, not an error', async () => {
      const file = path.join(dir, 'first.bin');
      for (let cut = 0; cut < 40; cut++) {
        await fs.rm(file, { force: true });
        const s = await openStore(file, g, cut);
        await assert.rejects(s.records.write('trust', OLD), PowerCut);
        await s.dev.close();
        const r = await openStore(file, g);
        assert.equal(await r.records.read('trust'), null);
        await r.records.close();
      }
    });
  });
}
