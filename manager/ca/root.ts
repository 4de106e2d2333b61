/**
 * Root CA certificates, built with @peculiar/x509: the self-signed root a
 * fleet starts with, and the shared builder the root key update uses for
 * its cross-certificates. Every CA certificate carries basicConstraints
 * (critical), keyUsage keyCertSign|cRLSign|digitalSignature (critical), a
 * method-1 subjectKeyIdentifier and an authorityKeyIdentifier keyid, so
 * chain builders can tell K0 and K1 apart even when both roots share a DN.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { KeyObject } from 'node:crypto';
import { name, NAME_ATTRIBUTES, type NameAttribute, type Rdn } from '../../protocol/der.ts';
import { readCaCertificate } from './cert-info.ts';
import { CaError } from './errors.ts';
import { checkedValidity, randomSerial } from './fields.ts';
import { algorithmOf, generateKeyPair, keyIdentifier, spkiOf, toCryptoKey, webCryptoSigningAlgorithm, type CaKeyAlgorithm } from './keys.ts';
import { derToPem } from './pem.ts';

/** A CA certificate with its private key. */
export interface RootMaterial {
  /** PEM certificate. */
  readonly cert: string;
  /** Private key (never serialized by this module). */
  readonly key: KeyObject;
}

/** Parameters of a new self-signed root. */
export interface CreateRootOptions {
  /** Distinguished name in encoding order, e.g. 'CN=Fleet Root 2026,O=Example'. */
  readonly subject: string;
  readonly algorithm: CaKeyAlgorithm;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * basicConstraints pathLenConstraint of self-signed roots. 1, not 0: with a
 * new DN the distribution certificate D is a non-self-issued CA certificate
 * between R0 and the leaves (R0 → D → leaf), and likewise OldWithNew sits
 * between R1 and K0's leaves; RFC 5280 §6.1.4 (and OpenSSL) count it.
 */
export const ROOT_PATH_LENGTH = 1;

/** pathLenConstraint of the cross-certificates (D, OldWithNew): they sign leaves only. */
export const CROSS_PATH_LENGTH = 0;

const CA_KEY_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature;

/**
 * Encode a DN string ('CN=Fleet Root,O=Example', encoding order) as DER
 * with protocol/der.ts, so every name trustroll issues follows one set of
 * string-type rules. Multi-valued RDNs and other attribute types are
 * rejected with E_CA_SUBJECT.
 */
export function encodeSubject(dn: string): Buffer {
  let rdns: Rdn[];
  try {
    const parsed = new x509.Name(dn, { serialNumber: '2.5.4.5' }).toJSON();
    rdns = parsed.map((rdn) => {
      const entries = Object.entries(rdn);
      const [type, values] = entries[0] ?? [];
      if (entries.length !== 1 || !values || values.length !== 1) throw new Error('multi-valued RDNs are not supported');
      if (!(type! in NAME_ATTRIBUTES)) throw new Error(`attribute "${type}" is not supported (use ${Object.keys(NAME_ATTRIBUTES).join(', ')})`);
      const value = values[0]!;
      if (value.startsWith('#')) throw new Error('hex-encoded attribute values are not supported');
      return [type as NameAttribute, value] as const;
    });
    if (rdns.length === 0) throw new Error('the name is empty');
    return name(rdns);
  } catch (err) {
    throw new CaError('E_CA_SUBJECT', `subject ${JSON.stringify(dn)} is not usable: ${(err as Error).message}`, { cause: err });
  }
}

/** Everything a CA certificate is made of; names are DER. */
export interface CaCertificateSpec {
  readonly subject: Buffer;
  readonly issuer: Buffer;
  /** DER SPKI of the certified key. */
  readonly publicKey: Buffer;
  readonly signingKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectKeyId: Buffer;
  readonly authorityKeyId: Buffer;
  readonly pathLength: number;
}

/**
 * Build and sign one CA certificate (self-signed or cross) with
 * @peculiar/x509, then check that the subject and issuer came out byte for
 * byte as given. Returns PEM.
 */
export async function buildCaCertificate(spec: CaCertificateSpec): Promise<string> {
  const { notBefore, notAfter } = checkedValidity(spec.notBefore, spec.notAfter);
  const algorithm = algorithmOf(spec.signingKey);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial().toString('hex'),
    subject: new x509.Name(spec.subject),
    issuer: new x509.Name(spec.issuer),
    notBefore,
    notAfter,
    publicKey: spec.publicKey,
    signingKey: await toCryptoKey(spec.signingKey),
    signingAlgorithm: webCryptoSigningAlgorithm(algorithm),
    extensions: [
      new x509.BasicConstraintsExtension(true, spec.pathLength, true),
      new x509.KeyUsagesExtension(CA_KEY_USAGE, true),
      new x509.SubjectKeyIdentifierExtension(spec.subjectKeyId.toString('hex')),
      new x509.AuthorityKeyIdentifierExtension(spec.authorityKeyId.toString('hex')),
    ],
  });
  const der = Buffer.from(cert.rawData);
  const info = readCaCertificate(der);
  if (!info.subject.equals(spec.subject) || !info.issuer.equals(spec.issuer)) {
    throw new Error('internal: @peculiar/x509 re-encoded a Name differently; refusing to emit a certificate whose names may not match its chain');
  }
  return derToPem(der);
}

/**
 * Create a self-signed root: a fresh key of `algorithm`, CA:true with
 * pathLen 1, keyCertSign|cRLSign|digitalSignature, SKI = AKI = SHA-1 of the
 * key, random 128-bit serial.
 */
export async function createRoot(options: CreateRootOptions): Promise<RootMaterial> {
  const subject = encodeSubject(options.subject);
  checkedValidity(options.notBefore, options.notAfter);
  const keys = await generateKeyPair(options.algorithm);
  const spki = spkiOf(keys.publicKey);
  const keyId = keyIdentifier(spki);
  const cert = await buildCaCertificate({
    subject,
    issuer: subject,
    publicKey: spki,
    signingKey: keys.privateKey,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    subjectKeyId: keyId,
    authorityKeyId: keyId,
    pathLength: ROOT_PATH_LENGTH,
  });
  return { cert, key: keys.privateKey };
}
