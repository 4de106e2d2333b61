/**
 * RecordStore view of an AbStore: each record is one entry of the A/B
 * image, so a write is all-or-nothing by construction (see ab-store.ts).
 * Record names follow `hal/names.ts`; key entries live under a reserved
 * prefix that no valid record name can reach.
 */
import type { RecordStore, RecordStoreIntegrity } from '../record-store.ts';
import { assertName } from '../names.ts';
import type { AbStore } from './ab-store.ts';

/** Prefix of record entries inside the A/B image. */
export const RECORD_PREFIX = 'r:';

/**
 * Records on an EEPROM byte device. `release` is called once on close; it
 * closes the AbStore when no other view (e.g. the EEPROM key store) uses it.
 */
export class EepromRecordStore implements RecordStore {
  readonly backend = 'eeprom';
  private released = false;

  constructor(
    private readonly store: AbStore,
    private readonly release: () => Promise<void>,
  ) {}

  /** Roll-back report of the A/B image (newest slot damaged, older one adopted). */
  integrity(): RecordStoreIntegrity {
    return describeIntegrity(this.store);
  }

  /** Bytes the record `name` may take in one slot, next to every other entry. */
  room(name: string): number {
    assertName(name, 'record name');
    return this.store.room(RECORD_PREFIX + name);
  }

  async read(name: string): Promise<Buffer | null> {
    assertName(name, 'record name');
    return this.store.get(RECORD_PREFIX + name);
  }

  async write(name: string, value: Buffer): Promise<void> {
    assertName(name, 'record name');
    await this.store.set(RECORD_PREFIX + name, value);
  }

  async remove(name: string): Promise<void> {
    assertName(name, 'record name');
    await this.store.set(RECORD_PREFIX + name, null);
  }

  async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.release();
  }
}

/** The A/B store's integrity as a RecordStoreIntegrity with a one-line description. */
export function describeIntegrity(store: AbStore): RecordStoreIntegrity {
  const i = store.integrity();
  const where = `slots A ${i.slots[0]}, B ${i.slots[1]}; commit counters ${i.counters[0]}, ${i.counters[1]}`;
  const detail = i.rolledBack
    ? `EEPROM roll-back: the newest image (generation ${i.committedGeneration}) is damaged and generation ${i.loadedGeneration} was loaded instead; ${i.lostWrites} acknowledged write(s) lost, ${i.missingWrites} still to be made again (${where})`
    : i.committedGeneration === null && i.loadedGeneration > 0
      ? `EEPROM image generation ${i.loadedGeneration}; no valid commit counter, so a roll-back cannot be ruled out (${where})`
      : `EEPROM image generation ${store.currentGeneration}, committed ${i.committedGeneration ?? '-'} (${where})`;
  return { rolledBack: i.rolledBack, lostWrites: i.lostWrites, missingWrites: i.missingWrites, loadedGeneration: i.loadedGeneration, committedGeneration: i.committedGeneration, detail };
}
