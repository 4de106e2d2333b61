/**
 * KeyStore on a PKCS#11 token through pkcs11js. Keys are generated inside
 * the token as CKA_TOKEN objects with CKA_SENSITIVE=true and
 * CKA_EXTRACTABLE=false; signing is CKM_ECDSA / CKM_RSA_PKCS inside the
 * token. Serves SoftHSM2, secure elements with a PKCS#11 module, and the TPM
 * through tpm2-pkcs11 (see hal/tpm/tpm-key-store.ts).
 */
import crypto from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { KEY_ALGORITHMS, rsaBits, type HealthReport, type KeyAlgorithm, type KeyInfo, type KeyStore, type TlsKeyRef } from '../key-store.ts';
import { HalError, asHalError } from '../errors.ts';
import { assertName, assertSignInput } from '../names.ts';
import { acquireModule, releaseModule, type InitFailure } from './module.ts';
import { findTokenSlot, openUserSession, tokenLabelOf } from './session.ts';
import { P256_EC_PARAMS, SHA256_DIGEST_INFO_PREFIX, p256SpkiFromEcPoint, rawEcdsaToDer, rsaSpki } from './der.ts';

/** Everything needed to open a token-backed key store. */
export interface Pkcs11StoreOptions {
  /** Name reported as `backend` ('pkcs11' or 'tpm'). */
  readonly backend: string;
  readonly module: string;
  readonly tokenLabel: string;
  /** User PIN. Never logged. */
  readonly pin: string;
  /** Config setting to name when the PIN is refused ('keys.pin' or 'keys.pinFile'). */
  readonly pinSetting: string;
  readonly env: Readonly<Record<string, string>>;
  readonly initFailure: InitFailure;
}

/** PKCS#11 session state "R/W user functions" (v2.40 section 5.6); pkcs11js does not export it. */
const CKS_RW_USER_FUNCTIONS = 3;

interface Found {
  readonly priv: Buffer;
  readonly pub: Buffer | null;
  readonly algorithm: KeyAlgorithm;
}

/** Token-resident keys. Open with `open()`; one logged-in session, calls serialized. */
export class Pkcs11KeyStore implements KeyStore {
  readonly backend: string;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly p11: pkcs11js.PKCS11,
    private readonly session: Buffer,
    private readonly opts: Pkcs11StoreOptions,
  ) {
    this.backend = opts.backend;
  }

  /** Loads the module, finds the token, logs in. Fails with E_HAL_CONFIG / TOKEN_MISSING / PIN / TPM_ABSENT. */
  static async open(opts: Pkcs11StoreOptions): Promise<Pkcs11KeyStore> {
    const p11 = acquireModule(opts.module, opts.env, opts.initFailure);
    try {
      const slot = findTokenSlot(p11, opts.tokenLabel);
      return new Pkcs11KeyStore(p11, openUserSession(p11, slot, opts.pin, opts.pinSetting), opts);
    } catch (err) {
      releaseModule(opts.module);
      throw err instanceof HalError ? err : asHalError(err, `opening token ${opts.tokenLabel}`);
    }
  }

  /** Runs `fn` after every earlier call: one session cannot run two operations at once. */
  private serial<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.closed) throw new HalError('E_HAL_CLOSED', `${this.backend} key store`);
      try {
        return await fn();
      } catch (err) {
        throw asHalError(err, what);
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private findOne(cls: number, label: string): Buffer | null {
    this.p11.C_FindObjectsInit(this.session, [
      { type: pkcs11js.CKA_CLASS, value: cls },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    try {
      const found = this.p11.C_FindObjects(this.session, 2);
      if (found.length > 1) throw new HalError('E_HAL_IO', `token holds several objects labelled ${label}`);
      return found[0] ?? null;
    } finally {
      this.p11.C_FindObjectsFinal(this.session);
    }
  }

  private find(label: string): Found | null {
    const priv = this.findOne(pkcs11js.CKO_PRIVATE_KEY, label);
    if (priv === null) return null;
    // CK_ULONG: 8 bytes little-endian on the 64-bit targets the HAL runs on.
    const [kt] = this.p11.C_GetAttributeValue(this.session, priv, [{ type: pkcs11js.CKA_KEY_TYPE }]);
    const keyType = Number((kt!.value as Buffer).readBigUInt64LE(0));
    let algorithm: KeyAlgorithm = 'P-256';
    if (keyType === pkcs11js.CKK_RSA) {
      const [n] = this.p11.C_GetAttributeValue(this.session, priv, [{ type: pkcs11js.CKA_MODULUS }]);
      const bytes = (n!.value as Buffer).length - ((n!.value as Buffer)[0] === 0 ? 1 : 0);
      algorithm = bytes > 256 ? 'RSA-3072' : 'RSA-2048';
    }
    return { priv, pub: this.findOne(pkcs11js.CKO_PUBLIC_KEY, label), algorithm };
  }

  private spki(found: Found): Buffer {
    const obj = found.pub ?? found.priv;
    if (rsaBits(found.algorithm) !== undefined) {
      const [n, e] = this.p11.C_GetAttributeValue(this.session, obj, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }]);
      return rsaSpki(n!.value as Buffer, e!.value as Buffer);
    }
    if (found.pub === null) throw new HalError('E_HAL_IO', 'EC private key has no public key object on the token');
    const [pt] = this.p11.C_GetAttributeValue(this.session, found.pub, [{ type: pkcs11js.CKA_EC_POINT }]);
    return p256SpkiFromEcPoint(pt!.value as Buffer);
  }

  create(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo> {
    assertName(label, 'key label');
    return this.serial(`creating key ${label}`, async () => {
      if (this.find(label) !== null) throw new HalError('E_HAL_KEY_EXISTS', `a key labelled ${label} already exists on token ${this.opts.tokenLabel}`);
      const id = crypto.randomBytes(16);
      const common = [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: id },
      ];
      const priv = [
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
      ];
      let mech: number;
      let pub: pkcs11js.Template;
      if (algorithm === 'P-256') {
        mech = pkcs11js.CKM_EC_KEY_PAIR_GEN;
        pub = [...common, { type: pkcs11js.CKA_VERIFY, value: true }, { type: pkcs11js.CKA_EC_PARAMS, value: P256_EC_PARAMS }];
      } else if (rsaBits(algorithm) !== undefined) {
        mech = pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN;
        pub = [
          ...common,
          { type: pkcs11js.CKA_VERIFY, value: true },
          { type: pkcs11js.CKA_MODULUS_BITS, value: rsaBits(algorithm)! },
          { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
        ];
      } else throw new HalError('E_HAL_ALGORITHM', `the ${this.backend} backend makes ${KEY_ALGORITHMS.join(', ')} keys, not ${String(algorithm)}`);
      const pair = await this.p11.C_GenerateKeyPairAsync(this.session, { mechanism: mech }, pub, priv);
      return { label, algorithm, spki: this.spki({ priv: pair.privateKey, pub: pair.publicKey, algorithm }) };
    });
  }

  get(label: string): Promise<KeyInfo | null> {
    assertName(label, 'key label');
    return this.serial(`reading key ${label}`, () => {
      const found = this.find(label);
      return found === null ? null : { label, algorithm: found.algorithm, spki: this.spki(found) };
    });
  }

  list(): Promise<KeyInfo[]> {
    return this.serial('listing keys', () => {
      this.p11.C_FindObjectsInit(this.session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]);
      let handles: Buffer[];
      try {
        handles = this.p11.C_FindObjects(this.session, 1024);
      } finally {
        this.p11.C_FindObjectsFinal(this.session);
      }
      const out: KeyInfo[] = [];
      for (const h of handles) {
        const [l] = this.p11.C_GetAttributeValue(this.session, h, [{ type: pkcs11js.CKA_LABEL }]);
        const label = (l!.value as Buffer).toString('utf8');
        const found = this.find(label);
        if (found) out.push({ label, algorithm: found.algorithm, spki: this.spki(found) });
      }
      return out.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    });
  }

  sign(label: string, data: Buffer): Promise<Buffer> {
    assertName(label, 'key label');
    assertSignInput(data);
    const sha256Digest = crypto.createHash('sha256').update(data).digest();
    return this.serial(`signing with key ${label}`, async () => {
      const found = this.find(label);
      if (found === null) throw new HalError('E_HAL_KEY_NOT_FOUND', `no key labelled ${label} on token ${this.opts.tokenLabel}`);
      const rsa = rsaBits(found.algorithm) !== undefined;
      this.p11.C_SignInit(this.session, { mechanism: rsa ? pkcs11js.CKM_RSA_PKCS : pkcs11js.CKM_ECDSA }, found.priv);
      const input = rsa ? Buffer.concat([SHA256_DIGEST_INFO_PREFIX, sha256Digest]) : sha256Digest;
      const sig = await this.p11.C_SignAsync(this.session, input, Buffer.alloc(512));
      return rsa ? Buffer.from(sig) : rawEcdsaToDer(sig);
    });
  }

  destroy(label: string): Promise<void> {
    assertName(label, 'key label');
    return this.serial(`destroying key ${label}`, () => {
      const found = this.find(label);
      if (found === null) throw new HalError('E_HAL_KEY_NOT_FOUND', `no key labelled ${label} on token ${this.opts.tokenLabel}`);
      this.p11.C_DestroyObject(this.session, found.priv);
      if (found.pub) this.p11.C_DestroyObject(this.session, found.pub);
    });
  }

  async health(): Promise<HealthReport> {
    try {
      return await this.serial('health check', () => {
        const info = this.p11.C_GetSessionInfo(this.session);
        const token = this.p11.C_GetTokenInfo(info.slotID);
        const loggedIn = info.state === CKS_RW_USER_FUNCTIONS;
        return {
          ok: loggedIn,
          backend: this.backend,
          detail: `token "${tokenLabelOf(token)}" (${token.manufacturerID.trim()} ${token.model.trim()}), ${loggedIn ? 'logged in' : 'not logged in'}`,
        };
      });
    } catch (err) {
      return { ok: false, backend: this.backend, detail: (err as Error).message };
    }
  }

  tlsKey(label: string): Promise<TlsKeyRef> {
    assertName(label, 'key label');
    return this.serial(`locating key ${label}`, () => {
      if (this.find(label) === null) throw new HalError('E_HAL_KEY_NOT_FOUND', `no key labelled ${label} on token ${this.opts.tokenLabel}`);
      const { module, tokenLabel, pin, env } = this.opts;
      return { kind: 'pkcs11' as const, label, module, tokenLabel, pin, env };
    });
  }

  /**
   * The raw pkcs11js handle and session, for tests that prove the private
   * key cannot be read out. Not for agent code.
   */
  unsafeTokenAccess(): { p11: pkcs11js.PKCS11; session: Buffer } {
    return { p11: this.p11, session: this.session };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    try {
      this.p11.C_CloseSession(this.session);
    } finally {
      releaseModule(this.opts.module);
    }
  }
}
