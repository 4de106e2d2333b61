/**
 * Certificate parsing at the trust boundary: size-limited, exactly one PEM
 * block, parsed by node:crypto. Every failure is E_PEM with what to check.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { ProtocolError } from './errors.ts';
import { MAX_PEM_BYTES } from './limits.ts';
import { children, readTlv } from './der-reader.ts';

const PEM_RE = /^-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----\r?\n?$/;

const parsed = new Map<string, X509Certificate>();
const PARSE_CACHE = 512;

/**
 * Parse one PEM certificate received from outside; `what` names it in
 * errors (e.g. "D"). Successful parses are memoized by their exact text
 * (a fleet handles the same few roots thousands of times).
 */
export function parseCertificate(pem: string, what: string): X509Certificate {
  const hit = typeof pem === 'string' ? parsed.get(pem) : undefined;
  if (hit) {
    // Least recently used goes first: roots, used on every step, stay cached.
    parsed.delete(pem);
    parsed.set(pem, hit);
    return hit;
  }
  const cert = parseUncached(pem, what);
  remember(parsed, PARSE_CACHE, pem, cert);
  return cert;
}

/** Add to a bounded cache, dropping the oldest entry when it is full (Maps iterate in insertion order). */
function remember<K, V>(cache: Map<K, V>, max: number, key: K, value: V): void {
  if (cache.size >= max) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
}

function parseUncached(pem: string, what: string): X509Certificate {
  if (typeof pem !== 'string' || pem.length > MAX_PEM_BYTES) {
    throw new ProtocolError('E_PEM', `${what}: certificate missing or larger than ${MAX_PEM_BYTES} bytes`);
  }
  const m = PEM_RE.exec(pem.trim() + '\n');
  if (!m) throw new ProtocolError('E_PEM', `${what}: not exactly one PEM CERTIFICATE block`);
  const der = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  try {
    return new X509Certificate(der);
  } catch (err) {
    throw new ProtocolError('E_PEM', `${what}: not a valid X.509 certificate (${(err as Error).message})`);
  }
}

const fingerprints = new WeakMap<X509Certificate, string>();
const spkis = new WeakMap<X509Certificate, Buffer>();

/** SHA-256 fingerprint of the DER encoding, lower-case hex. */
export function fingerprint(cert: X509Certificate): string {
  let fp = fingerprints.get(cert);
  if (!fp) fingerprints.set(cert, (fp = createHash('sha256').update(cert.raw).digest('hex')));
  return fp;
}

/**
 * SHA-256 fingerprint of a PEM certificate the device itself stored (no
 * X.509 parse: the DER is the base64 body). Not for untrusted input.
 */
export function fingerprintPem(pem: string): string {
  let fp = pemFingerprints.get(pem);
  if (fp === undefined) {
    fp = createHash('sha256').update(derOfStoredPem(pem)).digest('hex');
    // A device holds a handful of certificates; a simulated fleet in one process a few per device.
    remember(pemFingerprints, PEM_FINGERPRINT_CACHE, pem, fp);
  }
  return fp;
}

const pemFingerprints = new Map<string, string>();
const PEM_FINGERPRINT_CACHE = 4096;

function derOfStoredPem(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''), 'base64');
}

/**
 * DER SubjectPublicKeyInfo of a PEM certificate this program stored itself
 * (no X.509 parse, which costs more than a signature check under OpenSSL
 * 3.0). Not for untrusted input.
 */
export function spkiOfStoredPem(pem: string): Buffer {
  return spkiFromDer(derOfStoredPem(pem));
}

/** DER SubjectPublicKeyInfo of the certificate's key. */
export function spkiOf(cert: X509Certificate): Buffer {
  let spki = spkis.get(cert);
  if (!spki) spkis.set(cert, (spki = spkiFromDer(cert.raw)));
  return spki;
}

/** The SubjectPublicKeyInfo bytes as encoded in the certificate (no key object is built). */
function spkiFromDer(der: Buffer): Buffer {
  const tbs = children(der, readTlv(der, 0))[0];
  if (!tbs) throw new ProtocolError('E_PEM', 'certificate without TBSCertificate');
  const fields = children(der, tbs);
  const spki = fields[fields[0]?.tag === 0xa0 ? 6 : 5];
  if (!spki || spki.tag !== 0x30) throw new ProtocolError('E_PEM', 'certificate without SubjectPublicKeyInfo');
  return der.subarray(spki.offset, spki.end);
}

/** The certificate in canonical PEM (64-column base64), for storage and export. */
export function toPem(cert: X509Certificate): string {
  const b64 = cert.raw.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** notBefore / notAfter as Dates. */
export function validity(cert: X509Certificate): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** A distinguished name on one line ("CN=x, O=y"), for messages. */
export function dn(name: string): string {
  return name.split('\n').join(', ');
}
