/**
 * CA key handling: generation, algorithm detection, key identifiers, the
 * signature AlgorithmIdentifier for each CA algorithm, and the bridge from
 * node:crypto KeyObjects to WebCrypto CryptoKeys that @peculiar/x509 needs.
 * Private keys stay KeyObjects; nothing here logs or returns key bytes.
 */
import { createHash, createPublicKey, ECDH, generateKeyPair as generateKeyPairCb, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { nullValue, oid, sequence } from '../../protocol/der.ts';
import { children, oidToString, readTlv } from '../../protocol/der-reader.ts';
import { CaError } from './errors.ts';

/** Key algorithms a trustroll CA key may use. P-384 signs with SHA-384, the others with SHA-256. */
export type CaKeyAlgorithm = 'P-256' | 'P-384' | 'RSA-2048' | 'RSA-3072';

/** Every supported CA key algorithm, for validation and test matrices. */
export const CA_KEY_ALGORITHMS: readonly CaKeyAlgorithm[] = ['P-256', 'P-384', 'RSA-2048', 'RSA-3072'];

/** The signature family of a CA algorithm: what a device must be able to verify. */
export type SignatureFamily = 'RSA' | 'ECDSA';

/** RSA for RSA-2048/3072, ECDSA for P-256/P-384. */
export function familyOf(algorithm: CaKeyAlgorithm): SignatureFamily {
  return algorithm.startsWith('RSA') ? 'RSA' : 'ECDSA';
}

/** The digest a CA algorithm signs with (RFC 5758 §3.2: SHA-384 for P-384). */
export function hashOf(algorithm: CaKeyAlgorithm): 'sha256' | 'sha384' {
  return algorithm === 'P-384' ? 'sha384' : 'sha256';
}

/** A freshly generated key pair. */
export interface KeyPair {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

/** OIDs this module and its users match on. */
export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

const NULL_PARAMS = Buffer.from([0x05, 0x00]);

const generate = promisify(generateKeyPairCb);

/** Generate a CA key pair off the main thread (RSA generation takes up to seconds). */
export async function generateKeyPair(algorithm: CaKeyAlgorithm): Promise<KeyPair> {
  switch (algorithm) {
    case 'P-256':
      return generate('ec', { namedCurve: 'prime256v1' });
    case 'P-384':
      return generate('ec', { namedCurve: 'secp384r1' });
    case 'RSA-2048':
      return generate('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
    case 'RSA-3072':
      return generate('rsa', { modulusLength: 3072, publicExponent: 0x10001 });
    default:
      throw new CaError('E_CA_ALGORITHM', `unknown CA key algorithm ${JSON.stringify(algorithm)}; use one of ${CA_KEY_ALGORITHMS.join(', ')}`);
  }
}

/** The CA algorithm of a private or public KeyObject; E_CA_ALGORITHM for anything else. */
export function algorithmOf(key: KeyObject): CaKeyAlgorithm {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec' && details.namedCurve === 'prime256v1') return 'P-256';
  if (type === 'ec' && details.namedCurve === 'secp384r1') return 'P-384';
  if (type === 'rsa' && details.modulusLength === 2048) return 'RSA-2048';
  if (type === 'rsa' && details.modulusLength === 3072) return 'RSA-3072';
  const what = type === 'rsa' ? `RSA-${details.modulusLength}` : type === 'ec' ? `EC ${details.namedCurve}` : String(type);
  throw new CaError('E_CA_ALGORITHM', `CA key is ${what}; a CA key must be ${CA_KEY_ALGORITHMS.join(', ')}`);
}

/** DER SubjectPublicKeyInfo of a public key, or of the public half of a private key. */
export function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** The parts of a SubjectPublicKeyInfo the CA needs. */
export interface SpkiParts {
  /** Algorithm OID, dotted. */
  readonly algorithm: string;
  /** Curve OID for EC keys, dotted; undefined otherwise. */
  readonly curve: string | undefined;
  /** The complete parameters element of the AlgorithmIdentifier, if any. */
  readonly params: Buffer | undefined;
  /** Contents of the subjectPublicKey BIT STRING (without the unused-bits octet). */
  readonly subjectPublicKey: Buffer;
}

/** Split a DER SubjectPublicKeyInfo; throws on anything that is not exactly one SPKI. */
export function spkiParts(spki: Buffer): SpkiParts {
  const top = readTlv(spki, 0);
  if (top.tag !== 0x30 || top.end !== spki.length) throw new Error('SPKI is not exactly one SEQUENCE');
  const [alg, bits, extra] = children(spki, top);
  if (!alg || alg.tag !== 0x30 || !bits || bits.tag !== 0x03 || extra) throw new Error('SPKI must be SEQUENCE { AlgorithmIdentifier, BIT STRING }');
  const [algOid, params, more] = children(spki, alg);
  if (!algOid || algOid.tag !== 0x06 || more) throw new Error('SPKI AlgorithmIdentifier is malformed');
  if (bits.end - bits.start < 2 || spki[bits.start] !== 0) throw new Error('SPKI key BIT STRING is empty or not octet aligned');
  return {
    algorithm: oidToString(spki.subarray(algOid.start, algOid.end)),
    curve: params?.tag === 0x06 ? oidToString(spki.subarray(params.start, params.end)) : undefined,
    params: params ? spki.subarray(algOid.next, params.end) : undefined,
    subjectPublicKey: spki.subarray(bits.start + 1, bits.end),
  };
}

/** Key identifier per RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(spkiParts(spki).subjectPublicKey).digest();
}

/** What a device (subject) key is, after validation. */
export interface SubjectKey {
  readonly type: 'ec' | 'rsa';
  readonly keyId: Buffer;
}

const CURVES: Record<string, string> = { [OID.prime256v1]: 'prime256v1', [OID.secp384r1]: 'secp384r1' };

/** Short Weierstrass curves y² = x³ − 3x + b over GF(p) (SEC 2 §2.4.2, §2.5.1); cofactor 1. */
const WEIERSTRASS: Record<string, { readonly p: bigint; readonly b: bigint; readonly size: number }> = {
  prime256v1: {
    p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    size: 32,
  },
  secp384r1: {
    p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    size: 48,
  },
};

/**
 * True if `point` is a valid public point of `curve`. Uncompressed points
 * are checked here (coordinates below p, on the curve; with cofactor 1
 * that also puts them in the prime-order group), ~3 µs; other encodings go
 * to OpenSSL through ECDH.convertKey, ~10 µs.
 */
export function isValidPublicPoint(point: Buffer, curve: string): boolean {
  const c = WEIERSTRASS[curve];
  if (c && point[0] === 0x04 && point.length === 1 + 2 * c.size) {
    const x = BigInt(`0x${point.toString('hex', 1, 1 + c.size)}`);
    const y = BigInt(`0x${point.toString('hex', 1 + c.size)}`);
    return x < c.p && y < c.p && (y * y - (x * x * x - 3n * x + c.b)) % c.p === 0n;
  }
  try {
    ECDH.convertKey(point, curve);
    return true;
  } catch {
    return false;
  }
}

/** Bit length of an RSAPublicKey's modulus after DER checks; throws on a malformed key. */
function rsaModulusBits(subjectPublicKey: Buffer): number {
  const top = readTlv(subjectPublicKey, 0);
  const [n, e, extra] = children(subjectPublicKey, top);
  if (top.tag !== 0x30 || top.end !== subjectPublicKey.length || n?.tag !== 0x02 || e?.tag !== 0x02 || extra) {
    throw new Error('RSAPublicKey is not SEQUENCE { modulus, publicExponent }');
  }
  const modulus = subjectPublicKey.subarray(n.start, n.end);
  const exponent = subjectPublicKey.subarray(e.start, e.end);
  if (modulus.length < 2 || modulus[0]! & 0x80 || (modulus[0] === 0 && !(modulus[1]! & 0x80))) throw new Error('RSA modulus is negative or not minimally encoded');
  if (exponent.length === 0 || exponent.length > 32 || exponent[0]! & 0x80 || !(exponent[exponent.length - 1]! & 1)) throw new Error('RSA public exponent is not a positive odd integer');
  if (exponent.length === 1 && exponent[0]! < 3) throw new Error('RSA public exponent is below 3');
  const significant = modulus[0] === 0 ? modulus.subarray(1) : modulus;
  return significant.length * 8 - Math.clz32(significant[0]!) + 24;
}

/**
 * Validate a device's SPKI (DER) and classify it. Accepts P-256, P-384
 * (named curves; the point must be on the curve) and RSA 2048–4096 (NULL
 * parameters, DER modulus, odd exponent ≥ 3). Done without
 * crypto.createPublicKey, which costs ~90 µs per key under OpenSSL 3, more
 * than the signature. Throws E_CA_ALGORITHM or E_LEAF_REQUEST.
 */
export function inspectSubjectKey(spki: Buffer): SubjectKey {
  let parts: SpkiParts;
  try {
    parts = spkiParts(spki);
  } catch (err) {
    throw new CaError('E_LEAF_REQUEST', `publicKey is not a valid DER SubjectPublicKeyInfo (${(err as Error).message})`, { cause: err });
  }
  const keyId = (): Buffer => createHash('sha1').update(parts.subjectPublicKey).digest();
  if (parts.algorithm === OID.ecPublicKey) {
    const curve = parts.curve === undefined ? undefined : CURVES[parts.curve];
    if (!curve) throw new CaError('E_CA_ALGORITHM', `device key curve ${parts.curve ?? '(explicit parameters)'} is not supported; use P-256, P-384 or RSA 2048-4096`);
    if (!isValidPublicPoint(parts.subjectPublicKey, curve)) throw new CaError('E_LEAF_REQUEST', `publicKey is not a valid point on ${curve}`);
    return { type: 'ec', keyId: keyId() };
  }
  if (parts.algorithm === OID.rsaEncryption) {
    let bits: number;
    try {
      if (!parts.params?.equals(NULL_PARAMS)) throw new Error('rsaEncryption parameters must be NULL');
      bits = rsaModulusBits(parts.subjectPublicKey);
    } catch (err) {
      throw new CaError('E_LEAF_REQUEST', `publicKey is not a valid RSA key (${(err as Error).message})`, { cause: err });
    }
    if (bits >= 2048 && bits <= 4096) return { type: 'rsa', keyId: keyId() };
    throw new CaError('E_CA_ALGORITHM', `device key is RSA-${bits}; device keys must be RSA 2048-4096, P-256 or P-384`);
  }
  throw new CaError('E_CA_ALGORITHM', `device key algorithm ${parts.algorithm} is not supported; use P-256, P-384 or RSA 2048-4096`);
}

const SIGNATURE_ALGORITHMS: Record<'ec256' | 'ec384' | 'rsa', Buffer> = {
  ec256: sequence(oid(OID.ecdsaWithSha256)),
  ec384: sequence(oid(OID.ecdsaWithSha384)),
  rsa: sequence(oid(OID.sha256WithRsa), nullValue()),
};

/**
 * Signature AlgorithmIdentifier DER for a CA algorithm: ecdsa-with-SHA256
 * (P-256) or ecdsa-with-SHA384 (P-384) without parameters (RFC 5758 §3.2),
 * sha256WithRSAEncryption with NULL parameters (RFC 4055 §5). Returns a
 * fresh copy.
 */
export function signatureAlgorithmDer(algorithm: CaKeyAlgorithm): Buffer {
  return Buffer.from(SIGNATURE_ALGORITHMS[algorithm === 'P-256' ? 'ec256' : algorithm === 'P-384' ? 'ec384' : 'rsa']);
}

/** WebCrypto import parameters for a CA algorithm. */
export function webCryptoImportAlgorithm(algorithm: CaKeyAlgorithm): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams {
  return familyOf(algorithm) === 'ECDSA' ? { name: 'ECDSA', namedCurve: algorithm } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

/** WebCrypto signing parameters for a CA algorithm (SHA-384 for P-384, SHA-256 otherwise). */
export function webCryptoSigningAlgorithm(algorithm: CaKeyAlgorithm): webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams {
  return familyOf(algorithm) === 'ECDSA' ? { name: 'ECDSA', hash: algorithm === 'P-384' ? 'SHA-384' : 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

const cryptoKeys = new WeakMap<KeyObject, Promise<webcrypto.CryptoKey>>();

/**
 * A non-extractable WebCrypto CryptoKey for a KeyObject (private: ['sign'],
 * public: ['verify']), cached per KeyObject. Node 20 has no direct
 * KeyObject→CryptoKey conversion, so the key travels as PKCS#8/SPKI DER
 * inside this process only.
 */
export function toCryptoKey(key: KeyObject): Promise<webcrypto.CryptoKey> {
  const hit = cryptoKeys.get(key);
  if (hit) return hit;
  const algorithm = webCryptoImportAlgorithm(algorithmOf(key));
  const made = key.type === 'private'
    ? webcrypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign'])
    : webcrypto.subtle.importKey('spki', key.export({ type: 'spki', format: 'der' }), algorithm, true, ['verify']);
  cryptoKeys.set(key, made);
  return made;
}
