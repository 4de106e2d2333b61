/**
 * Device record in a HAL RecordStore (EEPROM A/B image, or files), for
 * devices without a filesystem database. The record, its integrity hash and
 * a short history travel in ONE record write, which the HAL makes
 * all-or-nothing, so power loss leaves either the old or the new state.
 *
 * Size budget: the history is a ring of the last HISTORY entries, hash
 * chained (each entry's `chain` covers the one before it; the chain value
 * of the last dropped entry is kept as `base`, so the kept ring still
 * verifies), and the record keeps a bounded number of command results
 * (protocol/limits.ts), so the stored envelope has a fixed upper bound for
 * the device's life. A write that would not fit the store is refused with
 * E_STORE_FULL before anything is written.
 */
import { createHash } from 'node:crypto';
import type { RecordStore, RecordStoreIntegrity } from '../hal/record-store.ts';
import { canonicalJson } from '../protocol/canonical-json.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { DeviceRecord } from './device-record.ts';
import { openRecord, sealRecord, type HistoryEntry, type StateStore } from './state-store.ts';

/** How many applied steps the record keeps for the status view. */
export const HISTORY = 16;

interface Envelope {
  v: 1;
  body: string;
  hash: string;
  history: HistoryEntry[];
  /** Chain value before the first kept history entry, and how many entries were dropped before it. */
  base?: { chain: string; dropped: number };
}

/** The chain value of `entry` following `prev`. */
export function chainOf(prev: string, entry: HistoryEntry): string {
  const { chain: _omit, ...plain } = entry;
  return createHash('sha256').update(prev).update(canonicalJson(plain)).digest('hex');
}

/** StateStore over a HAL record store. */
export class RecordStateStore implements StateStore {
  private history_: HistoryEntry[] = [];
  private base: { chain: string; dropped: number } = { chain: '', dropped: 0 };

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
    const base = env.base && typeof env.base.chain === 'string' && Number.isSafeInteger(env.base.dropped) ? env.base : { chain: '', dropped: 0 };
    let prev = base.chain;
    for (const [i, e] of env.history.entries()) {
      // Entries written before the chain existed carry none; the chain starts at the first that does.
      if (e.chain === undefined) continue;
      if (chainOf(prev, e) !== e.chain) {
        throw new ProtocolError('E_STORE_CORRUPT', `${this.records.backend} record ${this.name}: history entry ${i} (seq ${e.seq}) breaks the hash chain`);
      }
      prev = e.chain;
    }
    this.history_ = env.history;
    this.base = { chain: base.chain, dropped: base.dropped };
    return record;
  }

  async save(record: DeviceRecord, entry?: HistoryEntry): Promise<void> {
    let history = this.history_;
    let base = this.base;
    if (entry) {
      const prev = history.at(-1)?.chain ?? base.chain;
      const all = [...history, { ...entry, chain: chainOf(prev, entry) }];
      const drop = Math.max(0, all.length - HISTORY);
      if (drop > 0) base = { chain: all[drop - 1]!.chain ?? base.chain, dropped: base.dropped + drop };
      history = all.slice(drop);
    }
    const env: Envelope = { v: 1, ...sealRecord(record), history, base };
    const bytes = Buffer.from(JSON.stringify(env));
    const room = this.records.room?.(this.name);
    if (room !== undefined && bytes.length > room) {
      throw new ProtocolError('E_STORE_FULL', `the device record would take ${bytes.length} bytes but the ${this.records.backend} record store has room for ${room} (setting "hal.eeprom.size"); nothing was changed`);
    }
    try {
      await this.records.write(this.name, bytes);
    } catch (err) {
      throw new ProtocolError('E_STORE_IO', `${this.records.backend} record ${this.name}: write failed (${(err as Error).message}); nothing was changed`);
    }
    this.history_ = history;
    this.base = base;
  }

  async history(limit: number): Promise<HistoryEntry[]> {
    return this.history_.slice(-limit);
  }

  /** Size in bytes the current record envelope takes in the HAL (for budgets and tests). */
  async storedBytes(): Promise<number> {
    return (await this.records.read(this.name))?.length ?? 0;
  }

  integrity(): RecordStoreIntegrity | null {
    return this.records.integrity?.() ?? null;
  }

  async close(): Promise<void> {
    await this.records.close();
  }
}
