/**
 * The operators' part of the management PKI: its own CA (kept in the
 * management PKI folder, apart from the CA the broker trusts, so an
 * operator certificate can never log in to the broker as a device), the
 * manager's HTTPS certificate, and one client certificate per operator with
 * the role in its subject (`CN=alice,OU=admin,O=trustroll operators`),
 * packed as PKCS#12 for browsers. Revoked operators are listed by
 * certificate fingerprint in `operators-revoked.json`.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint } from '../../protocol/pem.ts';
import { createRoot, type RootMaterial } from '../ca/root.ts';
import { LeafIssuer } from '../ca/leaf-issuer.ts';
import { randomSerial } from '../ca/fields.ts';
import { ManagerError } from '../errors.ts';
import { writeFileAtomic } from './key-vault.ts';

/** Operator roles, carried in the certificate's OU (and by API tokens): `read` sees everything, `admin` may also act. */
export type OperatorRole = 'read' | 'admin';

const DAY = 86_400_000;
const BACKDATE_MS = 3_600_000;
const ROLES: readonly OperatorRole[] = ['read', 'admin'];
/** Operator names: what a CN and a log line can carry safely. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** An operator certificate as issued. `key` and `p12` are secret. */
export interface OperatorCredentials {
  name: string;
  role: OperatorRole;
  cert: string;
  key: string;
  sha256: string;
}

/** The operator CA with its files in the management PKI folder. */
export class OperatorPki {
  private constructor(readonly dir: string, private readonly root: RootMaterial) {}

  /** The operator CA certificate (PEM): the HTTPS server asks for client certificates under it. */
  get ca(): string {
    return this.root.cert;
  }

  /** Open the operator CA in `dir` (the management PKI folder), creating it on first use. */
  static async openOrCreate(dir: string, now: Date): Promise<OperatorPki> {
    const certFile = join(dir, 'operator-ca.pem');
    const keyFile = join(dir, 'operator-ca-key.pem');
    if (existsSync(certFile)) {
      try {
        return new OperatorPki(dir, { cert: readFileSync(certFile, 'utf8'), key: createPrivateKey(readFileSync(keyFile, 'utf8')) });
      } catch (err) {
        throw new ManagerError('E_KEY_VAULT', `operator CA in ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    if (!existsSync(join(dir, 'ca.pem'))) throw new ManagerError('E_KEY_VAULT', `${dir} holds no management PKI; run "trustroll mgmt init --dir ${dir}" first`);
    const notBefore = new Date(now.getTime() - BACKDATE_MS);
    const root = await createRoot({ subject: 'CN=trustroll operator CA,O=trustroll', algorithm: 'P-256', notBefore, notAfter: new Date(notBefore.getTime() + 3650 * DAY) });
    writeFileAtomic(keyFile, root.key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    writeFileAtomic(certFile, root.cert, 0o644);
    return new OperatorPki(dir, root);
  }

  /**
   * The manager's HTTPS identity, issued once and kept (`https.pem`,
   * `https-key.pem`); re-issued when the requested names change or it
   * expires within 30 days.
   */
  httpsIdentity(o: { dnsNames: readonly string[]; ipAddresses: readonly string[]; now: Date }): { cert: string; key: string } {
    const certFile = join(this.dir, 'https.pem');
    const keyFile = join(this.dir, 'https-key.pem');
    const wanted = [...o.dnsNames.map((n) => `DNS:${n}`), ...o.ipAddresses.map((a) => `IP Address:${a}`)].sort();
    if (existsSync(certFile) && existsSync(keyFile)) {
      const cert = readFileSync(certFile, 'utf8');
      const c = new X509Certificate(cert);
      const have = (c.subjectAltName ?? '').split(', ').map((s) => s.replace(/^IP Address:(.*)$/, (_, ip: string) => `IP Address:${ip.toLowerCase()}`)).sort();
      const fresh = new Date(c.validTo).getTime() - o.now.getTime() > 30 * DAY;
      if (fresh && c.checkIssued(new X509Certificate(this.root.cert)) && wanted.every((w) => have.includes(w.replace(/^IP Address:(.*)$/, (_, ip: string) => `IP Address:${ip.toLowerCase()}`)))) {
        return { cert, key: readFileSync(keyFile, 'utf8') };
      }
    }
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const notBefore = new Date(o.now.getTime() - BACKDATE_MS);
    const cert = new LeafIssuer(this.root).issue({
      commonName: 'trustroll-manager-https', publicKey: publicKey.export({ type: 'spki', format: 'der' }), profile: 'server',
      dnsNames: [...o.dnsNames], ipAddresses: [...o.ipAddresses], notBefore, notAfter: new Date(notBefore.getTime() + 397 * DAY),
    });
    const key = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    writeFileAtomic(keyFile, key, 0o600);
    writeFileAtomic(certFile, cert, 0o644);
    return { cert, key };
  }

  /** Issue an operator's client certificate (role in OU). */
  async issueOperator(o: { name: string; role: OperatorRole; now: Date; lifetimeDays?: number }): Promise<OperatorCredentials> {
    if (!NAME.test(o.name)) throw new ManagerError('E_BAD_REQUEST', `operator name ${JSON.stringify(o.name)}: use 1-64 of A-Z a-z 0-9 . _ @ -`);
    if (!ROLES.includes(o.role)) throw new ManagerError('E_BAD_REQUEST', `operator role ${JSON.stringify(o.role)}: use read or admin`);
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const publicKey = await webcrypto.subtle.importKey('spki', pair.publicKey.export({ type: 'spki', format: 'der' }), alg, true, ['verify']);
    const caCert = new x509.X509Certificate(this.root.cert);
    const caKey = await webcrypto.subtle.importKey('pkcs8', this.root.key.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
    const notBefore = new Date(o.now.getTime() - BACKDATE_MS);
    const aki = caCert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    const generated = await x509.X509CertificateGenerator.create({
      serialNumber: Buffer.from(randomSerial()).toString('hex'),
      subject: new x509.Name([{ CN: [o.name] }, { OU: [o.role] }, { O: ['trustroll operators'] }]),
      issuer: caCert.subjectName,
      notBefore, notAfter: new Date(notBefore.getTime() + (o.lifetimeDays ?? 365) * DAY),
      publicKey, signingKey: caKey, signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        new x509.AuthorityKeyIdentifierExtension(aki),
      ],
    });
    const cert = generated.toString('pem') + '\n';
    const key = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    return { name: o.name, role: o.role, cert, key, sha256: fingerprint(new X509Certificate(cert)) };
  }

  /** Pack credentials as PKCS#12 (for a browser) with `password`, via the openssl command. */
  pkcs12(c: OperatorCredentials, password: string): Buffer {
    const tmp = mkdtempSync(join(tmpdir(), 'trustroll-p12-'));
    try {
      writeFileAtomic(join(tmp, 'key.pem'), c.key, 0o600);
      writeFileAtomic(join(tmp, 'cert.pem'), c.cert, 0o600);
      writeFileAtomic(join(tmp, 'ca.pem'), this.root.cert, 0o600);
      execFileSync('openssl', ['pkcs12', '-export', '-inkey', join(tmp, 'key.pem'), '-in', join(tmp, 'cert.pem'), '-certfile', join(tmp, 'ca.pem'),
        '-name', `trustroll operator ${c.name}`, '-passout', 'env:TRUSTROLL_P12_PASS', '-out', join(tmp, 'out.p12')],
      { env: { ...process.env, TRUSTROLL_P12_PASS: password }, stdio: ['ignore', 'ignore', 'pipe'] });
      return readFileSync(join(tmp, 'out.p12'));
    } catch (err) {
      throw new ManagerError('E_KEY_VAULT', `could not pack the PKCS#12 file with openssl: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Fingerprints of revoked operator certificates. */
  revoked(): Set<string> {
    const file = join(this.dir, 'operators-revoked.json');
    if (!existsSync(file)) return new Set();
    try {
      const list = JSON.parse(readFileSync(file, 'utf8')) as { sha256: string }[];
      return new Set(list.map((e) => e.sha256));
    } catch (err) {
      throw new ManagerError('E_KEY_VAULT', `${file} is unreadable (${(err as Error).message}); restore it, or nobody revoked could be told apart`);
    }
  }

  /** Revoke an operator certificate (by its PEM or fingerprint); recorded atomically. */
  revoke(o: { sha256: string; name: string; now: Date }): void {
    const file = join(this.dir, 'operators-revoked.json');
    const list = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as { sha256: string; name: string; at: string }[] : [];
    if (!list.some((e) => e.sha256 === o.sha256)) list.push({ sha256: o.sha256, name: o.name, at: o.now.toISOString() });
    writeFileAtomic(file, JSON.stringify(list, null, 2) + '\n', 0o644);
  }
}

/** A random PKCS#12 password (printed once to the operator). */
export function newP12Password(): string {
  return randomBytes(12).toString('base64url');
}
