/**
 * Builds hostile or broken certificates for bad-input tests, straight with
 * @peculiar/x509 so nothing in trustroll's CA can "fix" them.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, webcrypto, type KeyObject } from 'node:crypto';
import { keyIdentifier } from '../../manager/ca/keys.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function cryptoKey(key: KeyObject, usage: 'sign' | 'verify'): Promise<webcrypto.CryptoKey> {
  const der = usage === 'sign' ? key.export({ type: 'pkcs8', format: 'der' }) : key.export({ type: 'spki', format: 'der' });
  return webcrypto.subtle.importKey(usage === 'sign' ? 'pkcs8' : 'spki', der, ALG, true, [usage]);
}

const ski = (pub: KeyObject) => keyIdentifier(pub.export({ type: 'spki', format: 'der' })).toString('hex');

/** Fields of a forged certificate. */
export interface ForgeSpec {
  subject: string;
  issuer: string;
  publicKey: KeyObject;
  signingKey: KeyObject;
  /** Public key of the signer, for the AKI. */
  signerPublicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
  keyUsage: number;
  extendedKeyUsage?: string[];
}

/** Make a certificate exactly as specified (PEM). */
export async function forge(spec: ForgeSpec): Promise<string> {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(spec.ca, undefined, true),
    new x509.KeyUsagesExtension(spec.keyUsage, true),
    new x509.SubjectKeyIdentifierExtension(ski(spec.publicKey)),
    new x509.AuthorityKeyIdentifierExtension(ski(spec.signerPublicKey)),
  ];
  if (spec.extendedKeyUsage) extensions.push(new x509.ExtendedKeyUsageExtension(spec.extendedKeyUsage));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01' + createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 30),
    subject: spec.subject,
    issuer: spec.issuer,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    publicKey: await cryptoKey(spec.publicKey, 'verify'),
    signingKey: await cryptoKey(spec.signingKey, 'sign'),
    signingAlgorithm: ALG,
    extensions,
  });
  return cert.toString('pem') + '\n';
}

/** keyUsage bit values. */
export const KU = x509.KeyUsageFlags;

/** Subject DN of a PEM certificate in the form @peculiar/x509 accepts. */
export function subjectOf(pem: string): string {
  return new x509.X509Certificate(pem).subject;
}

/** validity of a PEM certificate. */
export function datesOf(pem: string): { notBefore: Date; notAfter: Date } {
  const c = new X509Certificate(pem);
  return { notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo) };
}
