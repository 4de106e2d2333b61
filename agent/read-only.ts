/**
 * Opening a configured device without changing it, for the technician's
 * tools (`status`, `selftest`) that may run next to the live agent: every
 * path the HAL or the store would create is checked first (a missing one is
 * an error naming its setting, never an empty store or EEPROM file made on
 * the spot), the SQLite store is opened read-only, and a HAL record store is
 * only read. The HAL and the store fail separately, so a tool can still
 * report on one when the other is broken.
 */
import { existsSync } from 'node:fs';
import { openHal, type Hal } from '../hal/config.ts';
import { HalError } from '../hal/errors.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { AgentConfig } from './config.ts';
import type { DeviceRecord } from './device-record.ts';
import { AgentError } from './errors.ts';
import { RecordStateStore } from './record-state-store.ts';
import { SqliteStateStore } from './sqlite-state-store.ts';
import { lostRecordError, type HistoryEntry, type StateStore } from './state-store.ts';

/** A device opened read-only; `halError` / `storeError` say why a part is missing. */
export interface ReadOnlyDevice {
  config: AgentConfig;
  hal: Hal | null;
  halError: Error | null;
  store: StateStore | null;
  record: DeviceRecord | null;
  history: HistoryEntry[];
  storeError: Error | null;
  close(): Promise<void>;
}

/** The HAL paths that must exist, with the setting that names each. */
function halPaths(config: AgentConfig): [string, string][] {
  const out: [string, string][] = [];
  const { keys, records, eeprom } = config.hal;
  if (keys.backend === 'file') out.push([keys.dir, 'hal.keys.dir']);
  if (keys.backend === 'tpm') out.push([keys.storeDir, 'hal.keys.storeDir']);
  if (records.backend === 'file') out.push([records.dir, 'hal.records.dir']);
  if ((keys.backend === 'eeprom' || records.backend === 'eeprom') && eeprom) out.push([eeprom.device, 'hal.eeprom.device']);
  return out;
}

/** Open the HAL for reading only if everything it would create already exists (its folders need not be writable by this user). */
async function openHalIfPresent(config: AgentConfig): Promise<Hal> {
  for (const [path, setting] of halPaths(config)) {
    if (!existsSync(path)) throw new HalError('E_HAL_CONFIG', `${path} does not exist; the device was never initialised here, or the setting points elsewhere`, { setting });
  }
  return openHal(config.hal, { readOnly: true });
}

/** Open the device of `config` for reading; never throws for a broken HAL or store (see the fields). */
export async function openReadOnly(config: AgentConfig): Promise<ReadOnlyDevice> {
  const dev: ReadOnlyDevice = {
    config, hal: null, halError: null, store: null, record: null, history: [], storeError: null,
    close: async () => {
      await dev.store?.close();
      await dev.hal?.keys.close();
      // A HAL record store belongs to the RecordStateStore, which closed it above.
      if (config.store.kind === 'sqlite' || !dev.store) await dev.hal?.records.close();
    },
  };
  try {
    dev.hal = await openHalIfPresent(config);
  } catch (err) {
    dev.halError = err as Error;
  }
  try {
    if (config.store.kind === 'sqlite') {
      if (!existsSync(config.store.path)) throw new AgentError('E_AGENT_NOT_PROVISIONED', `no trust store at ${config.store.path} (setting "store.path"); provision the device`);
      dev.store = new SqliteStateStore(config.store.path, {}, { readonly: true });
    } else {
      if (!dev.hal) throw new ProtocolError('E_STORE_IO', `the trust store lives in the HAL record store, which did not open (${dev.halError?.message})`);
      dev.store = new RecordStateStore(dev.hal.records, config.store.name);
    }
    const record = await dev.store.load();
    const rolledBack = dev.store.integrity?.();
    if (!record && rolledBack?.rolledBack) throw lostRecordError(rolledBack, config.deviceId);
    if (!record) throw new AgentError('E_AGENT_NOT_PROVISIONED', `device ${config.deviceId} has no trust store yet; provision it`);
    if (record.deviceId !== config.deviceId || record.role !== config.role) {
      throw new AgentError('E_AGENT_CONFIG', `the trust store belongs to ${record.deviceId} (${record.role}), but the configuration says ${config.deviceId} (${config.role}); fix deviceId/role`);
    }
    dev.record = record;
    dev.history = await dev.store.history(10);
  } catch (err) {
    dev.storeError = err as Error;
  }
  return dev;
}
