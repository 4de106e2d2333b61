/**
 * The HAL backends the agent suite runs on: each opens a real key store and
 * a state store for the device record (SQLite, or the HAL record store) the
 * way a device configured for it would, via `openHal(config)`.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHal } from '../../hal/config.ts';
import type { KeyStore } from '../../hal/key-store.ts';
import type { RecordStore } from '../../hal/record-store.ts';
import type { StateStore } from '../../agent/state-store.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { RecordStateStore } from '../../agent/record-state-store.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';
import { startSoftHsm, SOFTHSM_MODULE, type SoftHsm } from '../hal/support/softhsm.ts';
import { startSwTpm, type SwTpm } from '../hal/support/swtpm.ts';
import { provisionToken } from '../../hal/pkcs11/provision.ts';
import { DEFAULT_TPM2_PKCS11_MODULE, tpmModuleEnv } from '../../hal/tpm/tpm-key-store.ts';

/** An opened backend: keys, a state store per device, and a way to read the stored bytes. */
export interface OpenBackend {
  keys: KeyStore;
  /** A (new) state store for the device; call again to simulate a restart. */
  store(deviceId: string): StateStore;
  /** Digest of everything durable about the device's record, to prove nothing was written. */
  bytes(deviceId: string): Promise<string>;
  /**
   * Start a new key session (the TPM backend): tpm2-pkcs11 keeps every key
   * it touched loaded until the session ends, and the resource manager
   * allows a client 27 transient objects, so a long test reopens it.
   */
  renew?(): Promise<void>;
  close(): Promise<void>;
}

/** A backend the agent suite runs on. */
export interface AgentBackend {
  name: string;
  open(): Promise<OpenBackend>;
}

const sha = (...parts: (Buffer | string)[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest('hex');

function sqliteStores(dir: string) {
  return {
    store: (id: string) => new SqliteStateStore(join(dir, `${id}.db`)),
    bytes: async (id: string) => sha(...readdirSync(dir).filter((n) => n.startsWith(`${id}.db`) && !n.endsWith('-shm')).sort().flatMap((n) => [n, readFileSync(join(dir, n))])),
  };
}

function recordStores(records: RecordStore) {
  return {
    store: (id: string) => new RecordStateStore(new Proxy(records, { get: (t, k) => (k === 'close' ? async () => {} : Reflect.get(t, k, t)) }) as RecordStore, `${id}.state`),
    bytes: async (id: string) => sha((await records.read(`${id}.state`)) ?? Buffer.alloc(0)),
  };
}

async function halBackend(config: (dir: string) => object, dir: string, stateIn: 'sqlite' | 'records', extraClose: () => Promise<void> = async () => {}, renewKeys = false): Promise<OpenBackend> {
  const hal = await openHal(config(dir));
  const stores = stateIn === 'sqlite' ? sqliteStores(dir) : recordStores(hal.records);
  const open: OpenBackend = {
    keys: hal.keys,
    ...stores,
    ...(renewKeys ? {
      renew: async () => {
        await open.keys.close();
        const fresh = await openHal({ ...config(dir), records: { backend: 'file', dir: join(dir, 'unused-records') } });
        await fresh.records.close();
        open.keys = fresh.keys;
      },
    } : {}),
    close: async () => {
      await open.keys.close();
      await hal.records.close();
      await extraClose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return open;
}

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `trustroll-agent-${name}-`));
const eeprom = (dir: string) => ({ device: join(dir, 'eeprom.bin'), size: 512 * 1024, pageSize: 64, writeGranularity: 1 });

/** Every backend: the agent must behave identically on each. */
export const AGENT_BACKENDS: AgentBackend[] = [
  {
    name: 'memory keys + SQLite store (simulation)',
    open: async () => {
      const dir = tmp('mem');
      return { keys: new MemoryKeyStore(), ...sqliteStores(dir), close: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'file keys + file records',
    open: async () => halBackend((d) => ({ keys: { backend: 'file', dir: join(d, 'keys') }, records: { backend: 'file', dir: join(d, 'records') } }), tmp('file'), 'records'),
  },
  {
    name: 'EEPROM keys (sealed) + EEPROM records',
    open: async () => {
      const dir = tmp('eeprom');
      const kek = join(dir, 'kek.bin');
      writeFileSync(kek, createHash('sha256').update(dir).digest(), { mode: 0o600 });
      return halBackend((d) => ({ keys: { backend: 'eeprom', protection: 'sealed', kekFile: kek }, records: { backend: 'eeprom' }, eeprom: eeprom(d) }), dir, 'records');
    },
  },
  {
    name: 'PKCS#11 (SoftHSM2) keys + SQLite store',
    open: async () => {
      const hsm: SoftHsm = await startSoftHsm('agent-suite');
      const dir = tmp('p11');
      return halBackend((d) => ({ keys: { backend: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: hsm.tokenLabel, pin: hsm.pin, moduleEnv: hsm.env }, records: { backend: 'file', dir: join(d, 'records') } }), dir, 'sqlite', () => hsm.stop());
    },
  },
  {
    name: 'TPM 2.0 (swtpm via tpm2-pkcs11) keys + EEPROM records',
    open: async () => {
      const tpm: SwTpm = await startSwTpm();
      process.env.DBUS_SESSION_BUS_ADDRESS = tpm.busAddress;
      const dir = tmp('tpm');
      const storeDir = join(dir, 'tpm2-pkcs11');
      mkdirSync(storeDir, { mode: 0o700 });
      await provisionToken({ module: DEFAULT_TPM2_PKCS11_MODULE, env: tpmModuleEnv({ tcti: tpm.tcti, storeDir }), tokenLabel: 'agent-suite', soPin: '24681357', userPin: '123456' });
      return halBackend((d) => ({ keys: { backend: 'tpm', tcti: tpm.tcti, storeDir, tokenLabel: 'agent-suite', pin: '123456' }, records: { backend: 'eeprom' }, eeprom: eeprom(d) }), dir, 'records', () => tpm.stop(), true);
    },
  },
];
