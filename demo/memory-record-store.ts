/**
 * An in-memory RecordStore for simulated devices in large benchmarks
 * (10,000 agents cannot each hold a database file open). Nothing survives
 * the process; real devices use hal/ file or EEPROM records, or SQLite.
 */
import type { RecordStore } from '../hal/record-store.ts';

/** RecordStore in a Map; writes copy the buffer so callers cannot alias it. */
export class MemoryRecordStore implements RecordStore {
  readonly backend = 'memory';
  private readonly records = new Map<string, Buffer>();

  async read(name: string): Promise<Buffer | null> {
    const v = this.records.get(name);
    return v ? Buffer.from(v) : null;
  }

  async write(name: string, value: Buffer): Promise<void> {
    this.records.set(name, Buffer.from(value));
  }

  async remove(name: string): Promise<void> {
    this.records.delete(name);
  }

  async close(): Promise<void> {}
}
