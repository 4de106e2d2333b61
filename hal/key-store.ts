/**
 * The device's key storage contract. A backend (file, EEPROM shim, PKCS#11,
 * TPM 2.0) keeps private keys inside itself where the hardware allows; the
 * agent only ever sees public keys and signatures, never private bytes.
 */

/** Key algorithms a backend may offer. P-256 is the default everywhere. */
export type KeyAlgorithm = 'P-256' | 'RSA-2048';

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
 * `sign` takes a message digest (SHA-256 of the data) and returns a DER
 * ECDSA signature, or an RSASSA-PKCS1-v1_5 signature for RSA keys.
 */
export interface KeyStore {
  readonly backend: string;
  create(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo>;
  get(label: string): Promise<KeyInfo | null>;
  list(): Promise<KeyInfo[]>;
  signDigest(label: string, sha256Digest: Buffer): Promise<Buffer>;
  destroy(label: string): Promise<void>;
  health(): Promise<HealthReport>;
  close(): Promise<void>;
}
