/**
 * Device record in a HAL RecordStore (EEPROM A/B image, or files), for
 * devices without a filesystem database. The record, its integrity hash and
 * a short history travel in ONE record write, which the HAL makes
 * all-or-nothing, so power loss leaves either the old or the new state.
 */
import type { RecordStore } from '../hal/record-store.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { DeviceRecord } from './device-record.ts';
import { openRecord, sealRecord, type HistoryEntry, type StateStore } from './state-store.ts';

/** How many applied steps the record keeps for the status view. */
const HISTORY = 24;

interface Envelope {
  v: 1;
  body: string;
  hash: string;
  history: HistoryEntry[];
}

/** StateStore over a HAL record store. */
export class RecordStateStore implements StateStore {
  private history_: HistoryEntry[] = [];

  /** `name` is the record name in the HAL (one per device). */
  constructor(private readonly records: RecordStore, private readonly name = 'device-state') {}

  async load(): Promise<DeviceRecord | null> {
    let raw: Buffer | null;
    try {
      raw = await this.records.read(this.name);
    } catch (err) {
      throw new ProtocolError('E_STORE_CORRUPT', `${this.records.backend} record ${this.name}: ${(err as Error).message}`);
    }
    if (raw === null) return null;
    let env: Envelope;
    try {
      env = JSON.parse(raw.toString('utf8')) as Envelope;
    } catch {
      throw new ProtocolError('E_STORE_CORRUPT', `${this.records.backend} record ${this.name} is not valid JSON`);
    }
    if (env?.v !== 1 || typeof env.body !== 'string' || typeof env.hash !== 'string' || !Array.isArray(env.history)) {
      throw new ProtocolError('E_STORE_CORRUPT', `${this.records.backend} record ${this.name} has an unknown layout`);
    }
    const record = openRecord(env.body, env.hash, `${this.records.backend} record ${this.name}`);
    this.history_ = env.history;
    return record;
  }

  async save(record: DeviceRecord, entry?: HistoryEntry): Promise<void> {
    const history = entry ? [...this.history_, entry].slice(-HISTORY) : this.history_;
    const env: Envelope = { v: 1, ...sealRecord(record), history };
    try {
      await this.records.write(this.name, Buffer.from(JSON.stringify(env)));
    } catch (err) {
      throw new ProtocolError('E_STORE_IO', `${this.records.backend} record ${this.name}: write failed (${(err as Error).message}); nothing was changed`);
    }
    this.history_ = history;
  }

  async history(limit: number): Promise<HistoryEntry[]> {
    return this.history_.slice(-limit);
  }

  async close(): Promise<void> {
    await this.records.close();
  }
}
