/**
 * RecordStore view of an AbStore: each record is one entry of the A/B
 * image, so a write is all-or-nothing by construction (see ab-store.ts).
 * Record names follow `hal/names.ts`; key entries live under a reserved
 * prefix that no valid record name can reach.
 */
import type { RecordStore } from '../record-store.ts';
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
