/**
 * The manager's CA private keys on disk: one PKCS#8 PEM file per key, mode
 * 0600, written atomically (temp file, fsync, rename, fsync of the folder).
 * Keys are loaded into node:crypto KeyObjects and never logged.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ManagerError } from '../errors.ts';

/** Write `data` to `path` so that after power loss the file holds either the old or the new bytes. */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): void {
  const dir = join(path, '..');
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** File-based store of CA private keys. */
export class KeyVault {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ManagerError('E_KEY_VAULT', `invalid key name "${name}"`);
    return join(this.dir, `${name}.key`);
  }

  /** Store a private key under `name`. */
  put(name: string, key: KeyObject): void {
    writeFileAtomic(this.file(name), key.export({ type: 'pkcs8', format: 'pem' }) as string);
  }

  /** Load a private key; refuses files readable by group or others. */
  get(name: string): KeyObject {
    const path = this.file(name);
    try {
      const st = statSync(path);
      if (st.mode & 0o077) throw new ManagerError('E_KEY_VAULT', `${path} is readable by group/others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
      return createPrivateKey(readFileSync(path));
    } catch (err) {
      if (err instanceof ManagerError) throw err;
      throw new ManagerError('E_KEY_VAULT', `cannot load CA key "${name}" from ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
}
