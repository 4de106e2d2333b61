/**
 * Process-wide registry of loaded PKCS#11 modules. A module may be
 * C_Initialize'd only once per process, so every store on the same .so
 * shares one pkcs11js instance; the last close finalizes it. The module's
 * environment (SOFTHSM2_CONF, TPM2_PKCS11_TCTI, ...) is applied to
 * process.env before C_Initialize because modules read it with getenv().
 */
import fs from 'node:fs';
import pkcs11js from 'pkcs11js';
import { HalError } from '../errors.ts';

/** A loaded, initialized module and how many stores use it. */
interface Loaded {
  readonly p11: pkcs11js.PKCS11;
  readonly env: string;
  users: number;
}

const loaded = new Map<string, Loaded>();

/** What to do when C_Initialize fails: which error code and setting to report. */
export interface InitFailure {
  readonly code: 'E_HAL_CONFIG' | 'E_HAL_TPM_ABSENT';
  readonly setting: string;
}

/** Loads and initializes `path` (or reuses it); E_HAL_CONFIG naming `keys.module` if it cannot load. */
export function acquireModule(path: string, env: Readonly<Record<string, string>>, onInitFail: InitFailure): pkcs11js.PKCS11 {
  const envKey = JSON.stringify(Object.entries(env).sort());
  const existing = loaded.get(path);
  if (existing) {
    if (existing.env !== envKey) {
      throw new HalError('E_HAL_CONFIG', `PKCS#11 module ${path} is already loaded in this process with a different environment`, { setting: 'keys.module' });
    }
    existing.users++;
    return existing.p11;
  }
  if (!fs.existsSync(path)) throw new HalError('E_HAL_CONFIG', `PKCS#11 module ${path} does not exist`, { setting: 'keys.module' });
  Object.assign(process.env, env);
  const p11 = new pkcs11js.PKCS11();
  try {
    p11.load(path);
  } catch (err) {
    throw new HalError('E_HAL_CONFIG', `cannot load PKCS#11 module ${path}: ${(err as Error).message}`, { setting: 'keys.module', cause: err });
  }
  try {
    p11.C_Initialize();
  } catch (err) {
    try {
      p11.close();
    } catch {
      /* the module failed to initialize; nothing else to release */
    }
    throw new HalError(onInitFail.code, `C_Initialize of ${path} failed: ${(err as Error).message}`, { setting: onInitFail.setting, cause: err });
  }
  loaded.set(path, { p11, env: envKey, users: 1 });
  return p11;
}

/** Drops one user of the module; the last one finalizes and unloads it. */
export function releaseModule(path: string): void {
  const entry = loaded.get(path);
  if (!entry) return;
  if (--entry.users > 0) return;
  loaded.delete(path);
  try {
    entry.p11.C_Finalize();
  } finally {
    entry.p11.close();
  }
}

/** The PKCS#11 return code of a pkcs11js error, or undefined. */
export function ckr(err: unknown): number | undefined {
  return err instanceof pkcs11js.Pkcs11Error ? err.code : undefined;
}
