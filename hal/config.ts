/**
 * Validates the HAL config (ajv, compiled once at module load) and opens
 * the configured stores. The agent calls `openHal` once at start and uses
 * the returned stores without knowing which backend it got. Every bad
 * setting fails here, before the agent runs, with a HalError naming it.
 */
import fs from 'node:fs/promises';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { KeyStore } from './key-store.ts';
import type { RecordStore } from './record-store.ts';
import { HalError } from './errors.ts';
import { KEY_BACKENDS, RECORD_BACKENDS, halConfigSchema, type EepromConfig, type HalConfig, type KeysConfig } from './config-schema.ts';
import { FileKeyStore } from './file/file-key-store.ts';
import { FileRecordStore } from './file/file-record-store.ts';
import type { AbStore } from './eeprom/ab-store.ts';
// The EEPROM, PKCS#11 and TPM backends are imported when configured: a device holds only the code of the backends it uses.

export type { HalConfig } from './config-schema.ts';

/** The opened HAL: one key store and one record store. Close both on shutdown. */
export interface Hal {
  readonly keys: KeyStore;
  readonly records: RecordStore;
}

// No meta-schema check or code optimiser at run time: they cost the idle agent megabytes (bench/footprint.ts); test/agent/schemas-meta.test.ts checks the schemas instead.
// Held weakly: the agent checks its configuration once at start, and the compiled validator (with its Ajv instance) is then garbage.
let validator: WeakRef<ValidateFunction<HalConfig>> | undefined;
const compiled = (): ValidateFunction<HalConfig> => {
  let v = validator?.deref();
  if (!v) validator = new WeakRef(v = new Ajv({ discriminator: true, allErrors: false, strict: true, strictRequired: false, validateSchema: false, code: { optimize: false } }).compile<HalConfig>(halConfigSchema));
  return v;
};

function settingOf(e: ErrorObject): string {
  const base = e.instancePath.split('/').filter(Boolean).join('.');
  const join = (p: string) => (base ? `${base}.${p}` : p);
  if (e.keyword === 'required') return join((e.params as { missingProperty: string }).missingProperty);
  if (e.keyword === 'additionalProperties') return join((e.params as { additionalProperty: string }).additionalProperty);
  return base || '(root)';
}

/** Validates `config`; throws E_HAL_CONFIG or E_HAL_BACKEND_UNKNOWN naming the setting. Never echoes values. */
export function checkHalConfig(config: unknown): HalConfig {
  const validate = compiled();
  if (validate(config)) {
    const c = config;
    if ((c.keys.backend === 'eeprom' || c.records.backend === 'eeprom') && c.eeprom === undefined) {
      throw new HalError('E_HAL_CONFIG', 'an "eeprom" backend is selected but the eeprom section (device, size, pageSize, writeGranularity) is missing', { setting: 'eeprom' });
    }
    return c;
  }
  const e = validate.errors![0]!;
  if (e.keyword === 'discriminator' && (e.params as { error?: string }).error === 'mapping') {
    const store = e.instancePath.slice(1);
    const known = store === 'keys' ? KEY_BACKENDS : RECORD_BACKENDS;
    throw new HalError('E_HAL_BACKEND_UNKNOWN', `${store}.backend must be one of ${known.join(', ')}`, { setting: `${store}.backend` });
  }
  if (/\/oneOf\/\d+\/oneOf(\/|$)/.test(e.schemaPath)) {
    throw new HalError('E_HAL_CONFIG', 'set exactly one of keys.pin or keys.pinFile', { setting: 'keys.pin / keys.pinFile' });
  }
  const setting = settingOf(e);
  const what = e.keyword === 'additionalProperties' ? 'is not a known setting' : (e.message ?? 'is invalid');
  throw new HalError('E_HAL_CONFIG', `${setting} ${what}`, { setting });
}

async function readPin(keys: { pin?: string; pinFile?: string }): Promise<{ pin: string; pinSetting: string }> {
  if (keys.pin !== undefined) return { pin: keys.pin, pinSetting: 'keys.pin' };
  try {
    const pin = (await fs.readFile(keys.pinFile!, 'utf8')).replace(/\r?\n$/, '');
    if (!pin) throw new Error('file is empty');
    return { pin, pinSetting: 'keys.pinFile' };
  } catch (err) {
    throw new HalError('E_HAL_CONFIG', `cannot read PIN file ${keys.pinFile}: ${(err as Error).message}`, { setting: 'keys.pinFile', cause: err });
  }
}

/** Opens the EEPROM once and hands out views that close it when the last one closes. */
async function openSharedEeprom(cfg: EepromConfig): Promise<{ store: AbStore; release: () => Promise<void>; addUser: () => void }> {
  const [{ AbStore }, { FileByteDevice }] = await Promise.all([import('./eeprom/ab-store.ts'), import('./eeprom/byte-device.ts')]);
  const store = await AbStore.open(await FileByteDevice.open(cfg.device, cfg));
  let users = 0;
  return { store, addUser: () => void users++, release: async () => void (--users === 0 && (await store.close())) };
}

async function openKeys(k: KeysConfig, eeprom: () => Promise<{ store: AbStore; release: () => Promise<void>; addUser: () => void }>, readOnly: boolean): Promise<KeyStore> {
  switch (k.backend) {
    case 'file':
      return FileKeyStore.open(k.dir, { readOnly });
    case 'eeprom': {
      const [{ readKek }, { EepromKeyStore }] = await Promise.all([import('./soft/seal.ts'), import('./eeprom/eeprom-key-store.ts')]);
      const protection = k.protection === 'sealed' ? { mode: 'sealed' as const, kek: await readKek(k.kekFile!, 'keys.kekFile') } : { mode: 'plain' as const };
      const e = await eeprom();
      e.addUser();
      return new EepromKeyStore(e.store, protection, e.release);
    }
    case 'pkcs11': {
      const { Pkcs11KeyStore } = await import('./pkcs11/pkcs11-key-store.ts');
      return Pkcs11KeyStore.open({
        backend: 'pkcs11',
        module: k.module,
        tokenLabel: k.tokenLabel,
        ...(await readPin(k)),
        env: k.moduleEnv ?? {},
        initFailure: { code: 'E_HAL_CONFIG', setting: 'keys.module' },
      });
    }
    case 'tpm': {
      const { openTpmKeyStore } = await import('./tpm/tpm-key-store.ts');
      return openTpmKeyStore({ tcti: k.tcti, storeDir: k.storeDir, tokenLabel: k.tokenLabel, ...(await readPin(k)), ...(k.module ? { module: k.module } : {}) });
    }
  }
}

/**
 * Validates `config` and opens its key and record stores. `readOnly` (the
 * technician's tools): the file backend's folders are neither created nor
 * required to be writable by the user running the tool.
 */
export async function openHal(config: unknown, o: { readOnly?: boolean } = {}): Promise<Hal> {
  const c = checkHalConfig(config);
  let shared: Promise<Awaited<ReturnType<typeof openSharedEeprom>>> | undefined;
  const eeprom = () => (shared ??= openSharedEeprom(c.eeprom!));
  const keys = await openKeys(c.keys, eeprom, o.readOnly ?? false);
  try {
    let records: RecordStore;
    if (c.records.backend === 'file') records = await FileRecordStore.open(c.records.dir, { readOnly: o.readOnly ?? false });
    else {
      const { EepromRecordStore } = await import('./eeprom/eeprom-record-store.ts');
      const e = await eeprom();
      e.addUser();
      records = new EepromRecordStore(e.store, e.release);
    }
    return { keys, records };
  } catch (err) {
    await keys.close();
    throw err;
  }
}
