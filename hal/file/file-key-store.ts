/**
 * KeyStore for development: each key is a framed PKCS#8 DER file
 * `<dir>/<label>.key` with mode 0600 in a 0700 directory. The private key is
 * only as safe as the file system; never use this backend on a fleet.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { KEY_ALGORITHMS, type HealthReport, type KeyAlgorithm, type KeyInfo, type KeyStore, type TlsKeyRef } from '../key-store.ts';
import { HalError, asHalError, permissionError } from '../errors.ts';
import { assertName, assertSignInput } from '../names.ts';
import { atomicCreateFile, durableRemove, ensurePrivateDir } from './atomic-write.ts';
import { frame, unframe } from './framing.ts';
import { decodeSoftKey, generateSoftKey, signSoft, softKeyPem, type SoftKey } from '../soft/soft-key.ts';

const SUFFIX = '.key';

/** Software keys in 0600 files. Open with `open()`. */
export class FileKeyStore implements KeyStore {
  readonly backend = 'file';
  private closed = false;

  private constructor(private readonly dir: string) {}

  /**
   * Opens (creating if needed, mode 0700) the key directory; E_HAL_PERMISSION
   * when this process's user may not write it. `readOnly` (the technician's
   * tools): only reads, so the folder must exist and nothing is created or checked for writing.
   */
  static async open(dir: string, o: { readOnly?: boolean } = {}): Promise<FileKeyStore> {
    if (o.readOnly) return new FileKeyStore(dir);
    try {
      await ensurePrivateDir(dir);
      await fs.access(dir, fs.constants.W_OK);
    } catch (err) {
      throw permissionError('key directory', dir, err);
    }
    return new FileKeyStore(dir);
  }

  private file(label: string): string {
    if (this.closed) throw new HalError('E_HAL_CLOSED', 'file key store');
    assertName(label, 'key label');
    return path.join(this.dir, label + SUFFIX);
  }

  private async load(label: string): Promise<SoftKey | null> {
    const f = this.file(label);
    let data: Buffer;
    try {
      data = await fs.readFile(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw asHalError(err, `reading key ${label}`);
    }
    return decodeSoftKey(Buffer.from(unframe(data, `key ${label}`)));
  }

  private async require(label: string): Promise<SoftKey> {
    const key = await this.load(label);
    if (key === null) throw new HalError('E_HAL_KEY_NOT_FOUND', `no key labelled ${label} in ${this.dir}`);
    return key;
  }

  async create(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo> {
    const f = this.file(label);
    if (!KEY_ALGORITHMS.includes(algorithm)) throw new HalError('E_HAL_ALGORITHM', `the file backend makes ${KEY_ALGORITHMS.join(', ')} keys, not ${String(algorithm)}`);
    const { key, pkcs8 } = generateSoftKey(algorithm);
    let created: boolean;
    try {
      created = await atomicCreateFile(f, frame(pkcs8));
    } catch (err) {
      throw asHalError(err, `writing key ${label}`);
    } finally {
      pkcs8.fill(0);
    }
    if (!created) throw new HalError('E_HAL_KEY_EXISTS', `a key labelled ${label} already exists`);
    return { label, algorithm, spki: key.spki };
  }

  async get(label: string): Promise<KeyInfo | null> {
    const key = await this.load(label);
    return key === null ? null : { label, algorithm: key.algorithm, spki: key.spki };
  }

  async list(): Promise<KeyInfo[]> {
    if (this.closed) throw new HalError('E_HAL_CLOSED', 'file key store');
    const names = (await fs.readdir(this.dir)).filter((n) => n.endsWith(SUFFIX) && !n.startsWith('.')).sort();
    const out: KeyInfo[] = [];
    for (const n of names) {
      const info = await this.get(n.slice(0, -SUFFIX.length));
      if (info) out.push(info);
    }
    return out;
  }

  async sign(label: string, data: Buffer): Promise<Buffer> {
    assertSignInput(data);
    return signSoft(await this.require(label), data);
  }

  async destroy(label: string): Promise<void> {
    const f = this.file(label);
    await this.require(label);
    try {
      await durableRemove(f);
    } catch (err) {
      throw asHalError(err, `removing key ${label}`);
    }
  }

  async health(): Promise<HealthReport> {
    try {
      await fs.access(this.dir, fs.constants.W_OK);
      return { ok: !this.closed, backend: this.backend, detail: `${this.dir} writable${this.closed ? ', store closed' : ''}` };
    } catch (err) {
      return { ok: false, backend: this.backend, detail: `${this.dir}: ${(err as Error).message}` };
    }
  }

  async tlsKey(label: string): Promise<TlsKeyRef> {
    return { kind: 'pem', label, keyPem: softKeyPem(await this.require(label)) };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
