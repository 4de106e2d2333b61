/**
 * Where the device record lives. The agent sees only this interface; SQLite
 * (devices with a filesystem) and HAL record stores (EEPROM, TPM NV) sit
 * behind it. `save` resolves only once the record survives power loss.
 */
import { createHash } from 'node:crypto';
import type { RecordStoreIntegrity } from '../hal/record-store.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { DeviceRecord } from './device-record.ts';

/** One applied step, kept for the technician's status view. */
export interface HistoryEntry {
  seq: number;
  rotationId: string;
  step: string;
  storeHash: string;
  at: string;
  /** Hash chain over the history (hal-records stores): SHA-256 of the previous entry's chain and this entry. */
  chain?: string;
}

/** Durable storage for the device record. */
export interface StateStore {
  /** The record, or null if the device was never provisioned. Throws E_STORE_CORRUPT on a failed integrity check. */
  load(): Promise<DeviceRecord | null>;
  /** Atomically replace the record (and append `entry` to the history, if given). */
  save(record: DeviceRecord, entry?: HistoryEntry): Promise<void>;
  /** Most recent applied steps, newest last. */
  history(limit: number): Promise<HistoryEntry[]>;
  /**
   * Roll-back report of the storage under the record (the newest copy lost,
   * an older one loaded); absent or null when the backend cannot tell (SQLite,
   * files: see docs/hal.md "What each mode can detect").
   */
  integrity?(): RecordStoreIntegrity | null;
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

/**
 * The error for a store that rolled back to *nothing*: the newest copy held
 * the device record (or the key) and is damaged, the older copy predates
 * provisioning. Never reported as "not provisioned": the technician must
 * know that something was lost.
 */
export function lostRecordError(integrity: RecordStoreIntegrity, deviceId: string): ProtocolError {
  return new ProtocolError('E_STORE_REGRESSED', `${integrity.detail}; the older copy holds no trust store for ${deviceId}: its provisioning was lost. Provision it again ("trustroll-agent provision --config <file> --root <root.pem> --cert <cert.pem>"; if "trustroll-agent init" reports the key lost too, make a new one with "trustroll-agent init --config <file> --replace-lost-key" and enrol it again)`);
}
