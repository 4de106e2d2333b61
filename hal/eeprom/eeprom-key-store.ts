/**
 * KeyStore on the EEPROM: keys are PKCS#8 entries in the same A/B image as
 * the records, so they share its power-loss guarantee. Like keys on real
 * EEPROM-only boards they are either `plain` (anyone who can read the chip
 * has the key) or `sealed` with a KEK held elsewhere (see soft/seal.ts).
 * Signing happens in software in the agent's process.
 */
import { KEY_ALGORITHMS, type HealthReport, type KeyAlgorithm, type KeyInfo, type KeyStore, type TlsKeyRef } from '../key-store.ts';
import { HalError } from '../errors.ts';
import { assertName, assertSignInput } from '../names.ts';
import { decodeSoftKey, generateSoftKey, signSoft, softKeyPem, type SoftKey } from '../soft/soft-key.ts';
import { seal, unseal } from '../soft/seal.ts';
import type { AbStore } from './ab-store.ts';

/** Prefix of key entries inside the A/B image. */
export const KEY_PREFIX = 'k:';
const PLAIN = 0;
const SEALED = 1;

/** How EEPROM keys are kept at rest: plain bytes, or sealed under a KEK. */
export type EepromKeyProtection = { readonly mode: 'plain' } | { readonly mode: 'sealed'; readonly kek: Buffer };

/** Software keys stored in the EEPROM image. */
export class EepromKeyStore implements KeyStore {
  readonly backend = 'eeprom';
  private released = false;

  constructor(
    private readonly store: AbStore,
    private readonly protection: EepromKeyProtection,
    private readonly release: () => Promise<void>,
  ) {}

  private load(label: string): SoftKey | null {
    assertName(label, 'key label');
    const entry = this.store.get(KEY_PREFIX + label);
    if (entry === null) return null;
    if (entry[0] === PLAIN) return decodeSoftKey(entry.subarray(1));
    if (entry[0] === SEALED) {
      if (this.protection.mode !== 'sealed') {
        throw new HalError('E_HAL_UNSEAL', `key ${label} is sealed but keys.protection is "plain"`, { setting: 'keys.protection' });
      }
      const pkcs8 = unseal(this.protection.kek, label, entry.subarray(1));
      try {
        return decodeSoftKey(pkcs8);
      } finally {
        pkcs8.fill(0);
      }
    }
    throw new HalError('E_HAL_RECORD_CORRUPT', `key ${label} has unknown protection tag ${entry[0]}`);
  }

  private require(label: string): SoftKey {
    const key = this.load(label);
    if (key === null) throw new HalError('E_HAL_KEY_NOT_FOUND', `no key labelled ${label} in the EEPROM`);
    return key;
  }

  async create(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo> {
    if (this.load(label) !== null) throw new HalError('E_HAL_KEY_EXISTS', `a key labelled ${label} already exists`);
    if (!KEY_ALGORITHMS.includes(algorithm)) throw new HalError('E_HAL_ALGORITHM', `the eeprom backend makes ${KEY_ALGORITHMS.join(', ')} keys, not ${String(algorithm)}`);
    const { key, pkcs8 } = generateSoftKey(algorithm);
    try {
      const entry =
        this.protection.mode === 'sealed'
          ? Buffer.concat([Buffer.from([SEALED]), seal(this.protection.kek, label, pkcs8)])
          : Buffer.concat([Buffer.from([PLAIN]), pkcs8]);
      await this.store.set(KEY_PREFIX + label, entry);
      entry.fill(0);
    } finally {
      pkcs8.fill(0);
    }
    return { label, algorithm, spki: key.spki };
  }

  async get(label: string): Promise<KeyInfo | null> {
    const key = this.load(label);
    return key === null ? null : { label, algorithm: key.algorithm, spki: key.spki };
  }

  async list(): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    for (const name of this.store.names(KEY_PREFIX)) {
      const info = await this.get(name.slice(KEY_PREFIX.length));
      if (info) out.push(info);
    }
    return out;
  }

  async sign(label: string, data: Buffer): Promise<Buffer> {
    assertSignInput(data);
    return signSoft(this.require(label), data);
  }

  async destroy(label: string): Promise<void> {
    this.require(label);
    await this.store.set(KEY_PREFIX + label, null);
  }

  async health(): Promise<HealthReport> {
    const slot = this.store.currentSlot;
    const rb = this.store.integrity();
    const rollback = rb.rolledBack ? `; ROLL-BACK: newest image (generation ${rb.committedGeneration}) damaged, generation ${rb.loadedGeneration} loaded, ${rb.missingWrites} write(s) missing` : '';
    return {
      ok: !this.released,
      backend: this.backend,
      detail: `keys ${this.protection.mode}; image generation ${this.store.currentGeneration} in slot ${slot ?? '-'}, ${this.store.capacity} bytes per slot${rollback}`,
    };
  }

  async tlsKey(label: string): Promise<TlsKeyRef> {
    return { kind: 'pem', label, keyPem: softKeyPem(this.require(label)) };
  }

  async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.protection.mode === 'sealed') this.protection.kek.fill(0);
    await this.release();
  }
}
