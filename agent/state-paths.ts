/**
 * Where the agent writes, in one list: the persistent state (trust store,
 * the HAL's key and record folders or EEPROM file, the management link's
 * record folder under `stateDir`) and the volatile runtime folder (the health file). The
 * running agent checks these for itself (health-reporter.ts), and the
 * technician's tools check them for the agent's user (permissions.ts), so
 * a folder the agent cannot write is named as a permission problem with
 * its path, never as a setting to fix.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { AgentConfig } from './config-types.ts';

/** One place the agent writes. */
export interface StatePath {
  /** Absolute path. */
  path: string;
  /** The setting that names it (for the report; the fix is a permission, not this setting). */
  setting: string;
  kind: 'dir' | 'file';
  /** What the agent keeps there, in a technician's words. */
  holds: string;
  /** True for the runtime folder (health): lost at reboot, never on flash. */
  volatile: boolean;
}

/**
 * The runtime folder (volatile: tmpfs on a device, e.g. /run/trustroll):
 * the `runtimeDir` setting, else a `run` folder beside the state (the
 * SQLite file's folder, or the HAL record folder's parent), for
 * development and tests; an EEPROM-only device without the setting uses
 * the system's temporary folder.
 */
export function runtimeDirOf(config: AgentConfig): string {
  if (config.runtimeDir) return resolve(config.runtimeDir);
  if (config.store.kind === 'sqlite') return join(dirname(resolve(config.store.path)), 'run');
  if (config.hal.records.backend === 'file') return join(dirname(resolve(config.hal.records.dir)), 'run');
  return join(tmpdir(), 'trustroll-agent');
}

/**
 * The persistent folder the agent writes its own files in (not the HAL's):
 * the `stateDir` setting, else the trust store's folder (the SQLite file's,
 * or the HAL record folder's parent: /var/lib/trustroll on the image), else
 * (an EEPROM-only device without the setting) the folder of `link.cert`.
 */
export function stateDirOf(config: AgentConfig): string {
  if (config.stateDir) return resolve(config.stateDir);
  if (config.store.kind === 'sqlite') return dirname(resolve(config.store.path));
  if (config.hal.records.backend === 'file') return dirname(resolve(config.hal.records.dir));
  return config.link ? dirname(resolve(config.link.cert)) : join(tmpdir(), 'trustroll-agent');
}

/** Where the management link's record and its rotated CA and certificate live: `<stateDir>/link`. */
export function linkDirOf(config: AgentConfig): string {
  return join(stateDirOf(config), 'link');
}

/** Every folder or file the agent of `config` writes (persistent first, then the runtime folder). */
export function statePaths(config: AgentConfig): StatePath[] {
  const out: StatePath[] = [];
  const add = (path: string, setting: string, kind: 'dir' | 'file', holds: string, volatile = false) => {
    const abs = resolve(path);
    if (!out.some((p) => p.path === abs)) out.push({ path: abs, setting, kind, holds, volatile });
  };
  const { keys, records, eeprom } = config.hal;
  if (config.store.kind === 'sqlite') add(dirname(config.store.path), 'store.path', 'dir', 'the trust store (SQLite file and its journal)');
  if (records.backend === 'file') add(records.dir, 'hal.records.dir', 'dir', 'the HAL records (trust store record, last refused command)');
  if (keys.backend === 'file') add(keys.dir, 'hal.keys.dir', 'dir', 'the device keys');
  if (keys.backend === 'tpm') add(keys.storeDir, 'hal.keys.storeDir', 'dir', 'the tpm2-pkcs11 key store');
  if ((keys.backend === 'eeprom' || records.backend === 'eeprom') && eeprom) add(eeprom.device, 'hal.eeprom.device', 'file', 'the EEPROM image');
  // A management-root rotation keeps its record and the new link CA and certificate there (agent/link-rotation); link.ca and link.cert are only read.
  if (config.link?.key !== undefined) add(linkDirOf(config), 'stateDir', 'dir', 'the management link record (link-state.json, and link-ca.pem and link-cert.pem after a management-root rotation)');
  add(config.healthFile ? dirname(config.healthFile) : runtimeDirOf(config), config.healthFile ? 'healthFile' : 'runtimeDir', 'dir', 'the health file the technician\'s tools read', true);
  return out;
}

/**
 * What decides whether the agent can write `p`: `p` itself when it exists,
 * else the nearest folder above it that exists (the agent creates its
 * missing folders, so it needs to write there).
 */
export function writeTarget(p: StatePath): { path: string; kind: 'dir' | 'file'; exists: boolean } {
  if (existsSync(p.path)) return { path: p.path, kind: p.kind, exists: true };
  let up = dirname(p.path);
  while (!existsSync(up) && dirname(up) !== up) up = dirname(up);
  return { path: up, kind: 'dir', exists: false };
}
