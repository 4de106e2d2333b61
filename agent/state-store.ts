/**
 * Where the device record lives. The agent sees only this interface; SQLite
 * (devices with a filesystem) and HAL record stores (EEPROM, TPM NV) sit
 * behind it. `save` resolves only once the record survives power loss.
 */
import { createHash } from 'node:crypto';
import { ProtocolError } from '../protocol/errors.ts';
import type { DeviceRecord } from './device-record.ts';

/** One applied step, kept for the technician's status view. */
export interface HistoryEntry {
  seq: number;
  rotationId: string;
  step: string;
  storeHash: string;
  at: string;
}

/** Durable storage for the device record. */
export interface StateStore {
  /** The record, or null if the device was never provisioned. Throws E_STORE_CORRUPT on a failed integrity check. */
  load(): Promise<DeviceRecord | null>;
  /** Atomically replace the record (and append `entry` to the history, if given). */
  save(record: DeviceRecord, entry?: HistoryEntry): Promise<void>;
  /** Most recent applied steps, newest last. */
  history(limit: number): Promise<HistoryEntry[]>;
  close(): Promise<void>;
}

/** Serialize a record with its integrity hash (over the exact stored text). */
export function sealRecord(record: DeviceRecord): { body: string; hash: string } {
  const body = JSON.stringify(record);
  return { body, hash: createHash('sha256').update(body).digest('hex') };
}

/** Parse and integrity-check a stored record; any mismatch is E_STORE_CORRUPT. */
export function openRecord(body: string, hash: string, where: string): DeviceRecord {
  const actual = createHash('sha256').update(body).digest('hex');
  if (actual !== hash) {
    throw new ProtocolError('E_STORE_CORRUPT', `${where}: trust store content hash mismatch (stored ${hash.slice(0, 12)}…, computed ${actual.slice(0, 12)}…)`);
  }
  let record: DeviceRecord;
  try {
    record = JSON.parse(body) as DeviceRecord;
  } catch {
    throw new ProtocolError('E_STORE_CORRUPT', `${where}: trust store is not valid JSON`);
  }
  if (record?.version !== 1 || typeof record.deviceId !== 'string' || !record.trust?.current || !record.identity?.active) {
    throw new ProtocolError('E_STORE_CORRUPT', `${where}: trust store record has an unknown layout (version ${String(record?.version)})`);
  }
  return record;
}
