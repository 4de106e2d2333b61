/**
 * The device's key storage contract. A backend (file, EEPROM shim, PKCS#11,
 * TPM 2.0) keeps private keys inside itself where the hardware allows; the
 * agent only ever sees public keys and signatures, never private bytes.
 */

/** Key algorithms a backend may offer. P-256 is the default everywhere; RSA for legacy peers that verify only RSA. */
export type KeyAlgorithm = 'P-256' | 'RSA-2048' | 'RSA-3072';

/** Every key algorithm of the contract, for option parsing and checks. */
export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['P-256', 'RSA-2048', 'RSA-3072'];

/** Modulus length of an RSA key algorithm; undefined for EC. */
export function rsaBits(algorithm: KeyAlgorithm): number | undefined {
  return algorithm === 'RSA-2048' ? 2048 : algorithm === 'RSA-3072' ? 3072 : undefined;
}

/** What a backend reports about one stored key. Never contains secret material. */
export interface KeyInfo {
  /** Caller-chosen label, unique inside the backend (e.g. "device", "device.next"). */
  readonly label: string;
  readonly algorithm: KeyAlgorithm;
  /** DER-encoded SubjectPublicKeyInfo. */
  readonly spki: Buffer;
}

/** Result of a backend self-check, for the technician's status view. */
export interface HealthReport {
  readonly ok: boolean;
  readonly backend: string;
  readonly detail: string;
}

/**
 * Secure key storage. All methods are async because hardware calls block.
 * `sign` signs SHA-256 of `data` (the backend hashes: token backends hash on
 * the host and sign the digest inside the token, software backends use
 * node:crypto) and returns a DER ECDSA signature, or an RSASSA-PKCS1-v1_5
 * signature for RSA keys. Taking data rather than a digest keeps software
 * backends on node:crypto, which cannot sign a bare ECDSA digest.
 */
export interface KeyStore {
  readonly backend: string;
  create(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo>;
  get(label: string): Promise<KeyInfo | null>;
  list(): Promise<KeyInfo[]>;
  sign(label: string, data: Buffer): Promise<Buffer>;
  destroy(label: string): Promise<void>;
  health(): Promise<HealthReport>;
  close(): Promise<void>;
  /**
   * Optional capability: how TLS can use this key. Callers should not
   * inspect the result themselves; hand it to `hal/tls/dialer.ts`, which
   * builds one secure context (in-memory keys) or one terminator process
   * (token-resident keys) and reuses it for every connection.
   */
  tlsKey?(label: string): Promise<TlsKeyRef>;
}

/**
 * How a TLS stack reaches a stored private key.
 * - `pem`: the key is in process memory (file, EEPROM, sealed modes); Node's
 *   own `tls` signs with it.
 * - `pkcs11`: the key never leaves a PKCS#11 token (SoftHSM2, a secure
 *   element, or the TPM through tpm2-pkcs11); a terminator process using the
 *   system OpenSSL and libp11 signs the handshake inside the token.
 */
export type TlsKeyRef =
  | { readonly kind: 'pem'; readonly label: string; readonly keyPem: string }
  | {
      readonly kind: 'pkcs11';
      readonly label: string;
      /** Path of the PKCS#11 module (.so). */
      readonly module: string;
      readonly tokenLabel: string;
      /** User PIN. Secret: passed to the terminator over a pipe, never argv or disk. */
      readonly pin: string;
      /** Environment the module reads (SOFTHSM2_CONF, TPM2_PKCS11_TCTI, ...). */
      readonly env: Readonly<Record<string, string>>;
    };
