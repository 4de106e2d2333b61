/**
 * A throwaway PKI for the live mTLS tests: a CA, a server certificate for
 * "localhost", and a device certificate issued for a HAL key's SPKI (the
 * HAL key itself never leaves its backend).
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** CA and server material in PEM. */
export interface TestPki {
  readonly caPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  /** Issues a client certificate with CN `cn` for the DER SPKI `spki`. */
  issueDevice(cn: string, spki: Buffer): Promise<string>;
}

function keyPem(der: ArrayBuffer): string {
  return `-----BEGIN PRIVATE KEY-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
}

/** Creates a CA and a server certificate for localhost / 127.0.0.1. */
export async function createTestPki(): Promise<TestPki> {
  const now = new Date(Date.now() - 60_000);
  const later = new Date(Date.now() + 86_400_000);
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=HAL Test CA',
    notBefore: now,
    notAfter: later,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const issue = async (cn: string, publicKey: CryptoKey, serial: string, server: boolean) =>
    (
      await x509.X509CertificateGenerator.create({
        serialNumber: serial,
        subject: `CN=${cn}`,
        issuer: ca.subject,
        notBefore: now,
        notAfter: later,
        publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: alg,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.ExtendedKeyUsageExtension([server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
          ...(server ? [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }])] : []),
        ],
      })
    ).toString('pem');
  const serverKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  let serial = 2;
  return {
    caPem: ca.toString('pem'),
    serverCertPem: await issue('localhost', serverKeys.publicKey, '02', true),
    serverKeyPem: keyPem(await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey)),
    issueDevice: async (cn, spki) => {
      const pub = await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
      return issue(cn, pub, (++serial).toString(16).padStart(2, '0'), false);
    },
  };
}
