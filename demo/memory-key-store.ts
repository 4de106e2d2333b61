/**
 * An in-memory KeyStore for the simulated devices of the in-process fleet
 * (demo, benchmarks, agent tests): thousands of devices without thousands
 * of key files. Real devices use a hal/ backend.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { HealthReport, KeyAlgorithm, KeyInfo, KeyStore, TlsKeyRef } from '../hal/key-store.ts';

/** Test KeyStore holding keys as node:crypto KeyObjects. */
export class MemoryKeyStore implements KeyStore {
  readonly backend = 'memory';
  private readonly keys = new Map<string, { info: KeyInfo; key: KeyObject }>();

  async create(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo> {
    if (this.keys.has(label)) throw new Error(`key ${label} exists`);
    const pair = algorithm === 'P-256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: algorithm === 'RSA-3072' ? 3072 : 2048 });
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

  async sign(label: string, data: Buffer): Promise<Buffer> {
    const k = this.keys.get(label);
    if (!k) throw new Error(`no key ${label}`);
    return sign('sha256', data, k.key);
  }

  async tlsKey(label: string): Promise<TlsKeyRef> {
    const k = this.keys.get(label);
    if (!k) throw new Error(`no key ${label}`);
    return { kind: 'pem', label, keyPem: k.key.export({ type: 'pkcs8', format: 'pem' }) as string };
  }

  async destroy(label: string): Promise<void> {
    this.keys.delete(label);
  }

  async health(): Promise<HealthReport> {
    return { ok: true, backend: this.backend, detail: `${this.keys.size} keys` };
  }

  async close(): Promise<void> {}
}
