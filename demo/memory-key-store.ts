/**
 * An in-memory KeyStore for tests that exercise the agent rather than a
 * HAL backend (the HAL backends run their own shared suite).
 */
import { constants, createHash, generateKeyPairSync, privateEncrypt, type KeyObject } from 'node:crypto';
import type { HealthReport, KeyAlgorithm, KeyInfo, KeyStore } from '../hal/key-store.ts';

/** Test KeyStore holding keys as node:crypto KeyObjects. */
export class MemoryKeyStore implements KeyStore {
  readonly backend = 'memory';
  private readonly keys = new Map<string, { info: KeyInfo; key: KeyObject }>();

  async create(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo> {
    if (this.keys.has(label)) throw new Error(`key ${label} exists`);
    const pair = algorithm === 'P-256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const info: KeyInfo = { label, algorithm, spki: pair.publicKey.export({ type: 'spki', format: 'der' }) };
    this.keys.set(label, { info, key: pair.privateKey });
    return info;
  }

  async get(label: string): Promise<KeyInfo | null> {
    return this.keys.get(label)?.info ?? null;
  }

  async list(): Promise<KeyInfo[]> {
    return [...this.keys.values()].map((k) => k.info);
  }

  async signDigest(label: string, digest: Buffer): Promise<Buffer> {
    const k = this.keys.get(label);
    if (!k) throw new Error(`no key ${label}`);
    // node:crypto has no ECDSA over a precomputed digest; the HAL file backend covers signing tests.
    if (k.info.algorithm === 'P-256') throw new Error('MemoryKeyStore cannot sign a prehashed P-256 digest');
    const prefix = Buffer.from('3031300d060960864801650304020105000420', 'hex');
    return privateEncrypt({ key: k.key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([prefix, digest]));
  }

  async destroy(label: string): Promise<void> {
    this.keys.delete(label);
  }

  async health(): Promise<HealthReport> {
    return { ok: true, backend: this.backend, detail: `${this.keys.size} keys` };
  }

  async close(): Promise<void> {}

  /** Test-only: the private key, to build TLS contexts in-process. */
  privateKey(label: string): KeyObject {
    const k = this.keys.get(label);
    if (!k) throw new Error(`no key ${label}`);
    return k.key;
  }

  /** Hash of the public key, for naming. */
  static keyId(info: KeyInfo): string {
    return createHash('sha256').update(info.spki).digest('hex').slice(0, 8);
  }
}
