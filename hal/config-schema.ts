/**
 * The HAL section of the agent's config, as a JSON Schema (draft-07, ajv)
 * and the matching TypeScript types. `keys` and `records` each pick a
 * backend with `backend`; the EEPROM geometry is shared in `eeprom` because
 * keys and records can live on the same chip.
 */

/** `keys` for development: software keys in 0600 files. */
export interface FileKeysConfig { backend: 'file'; dir: string }
/** `keys` on the EEPROM: software keys in the A/B image, plain or sealed under a KEK. */
export interface EepromKeysConfig { backend: 'eeprom'; protection: 'plain' | 'sealed'; kekFile?: string }
/** `keys` in a PKCS#11 token (SoftHSM2, secure element). Exactly one of pin / pinFile. */
export interface Pkcs11KeysConfig {
  backend: 'pkcs11';
  module: string;
  tokenLabel: string;
  pin?: string;
  pinFile?: string;
  /** Environment the module reads, e.g. { "SOFTHSM2_CONF": "/etc/softhsm/softhsm2.conf" }. */
  moduleEnv?: Record<string, string>;
}
/** `keys` in the TPM 2.0 through tpm2-pkcs11. Exactly one of pin / pinFile. */
export interface TpmKeysConfig {
  backend: 'tpm';
  tcti: string;
  storeDir: string;
  tokenLabel: string;
  pin?: string;
  pinFile?: string;
  module?: string;
}
/** Where keys live. */
export type KeysConfig = FileKeysConfig | EepromKeysConfig | Pkcs11KeysConfig | TpmKeysConfig;
/** Where records live: files, or the EEPROM A/B image. */
export type RecordsConfig = { backend: 'file'; dir: string } | { backend: 'eeprom' };
/** Geometry and device of the EEPROM part (required when any backend is "eeprom"). */
export interface EepromConfig { device: string; size: number; pageSize: number; writeGranularity: number }
/** The whole HAL config. */
export interface HalConfig { keys: KeysConfig; records: RecordsConfig; eeprom?: EepromConfig }

/** Backend names this build knows, per store. */
export const KEY_BACKENDS = ['file', 'eeprom', 'pkcs11', 'tpm'] as const;
export const RECORD_BACKENDS = ['file', 'eeprom'] as const;

const path = { type: 'string', minLength: 1 } as const;
const pinChoice = { oneOf: [{ required: ['pin'] }, { required: ['pinFile'] }] } as const;

/** JSON Schema of HalConfig. */
export const halConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['keys', 'records'],
  properties: {
    keys: {
      type: 'object',
      required: ['backend'],
      discriminator: { propertyName: 'backend' },
      oneOf: [
        { properties: { backend: { const: 'file' }, dir: path }, required: ['dir'], additionalProperties: false },
        {
          properties: { backend: { const: 'eeprom' }, protection: { enum: ['plain', 'sealed'] }, kekFile: path },
          required: ['protection'],
          additionalProperties: false,
          if: { properties: { protection: { const: 'sealed' } } },
          then: { required: ['kekFile'] },
        },
        {
          properties: {
            backend: { const: 'pkcs11' },
            module: path,
            tokenLabel: { type: 'string', minLength: 1, maxLength: 32 },
            pin: { type: 'string', minLength: 1 },
            pinFile: path,
            moduleEnv: { type: 'object', additionalProperties: { type: 'string' } },
          },
          required: ['module', 'tokenLabel'],
          additionalProperties: false,
          ...pinChoice,
        },
        {
          properties: {
            backend: { const: 'tpm' },
            tcti: { type: 'string', pattern: '^[a-z0-9_-]+(:.*)?$' },
            storeDir: path,
            tokenLabel: { type: 'string', minLength: 1, maxLength: 32 },
            pin: { type: 'string', minLength: 1 },
            pinFile: path,
            module: path,
          },
          required: ['tcti', 'storeDir', 'tokenLabel'],
          additionalProperties: false,
          ...pinChoice,
        },
      ],
    },
    records: {
      type: 'object',
      required: ['backend'],
      discriminator: { propertyName: 'backend' },
      oneOf: [
        { properties: { backend: { const: 'file' }, dir: path }, required: ['dir'], additionalProperties: false },
        { properties: { backend: { const: 'eeprom' } }, additionalProperties: false },
      ],
    },
    eeprom: {
      type: 'object',
      additionalProperties: false,
      required: ['device', 'size', 'pageSize', 'writeGranularity'],
      properties: {
        device: path,
        size: { type: 'integer', minimum: 256 },
        pageSize: { type: 'integer', minimum: 1 },
        writeGranularity: { type: 'integer', minimum: 1 },
      },
    },
  },
} as const;
