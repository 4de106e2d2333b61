import { strict as assert } from 'node:assert';
import { createHash, X509Certificate } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { rawChildren, readCaCertificate } from '../../manager/ca/cert-info.ts';
import { readTlv } from '../../protocol/der-reader.ts';
import { isCaError } from '../../manager/ca/errors.ts';
import { algorithmOf, signatureAlgorithmDer, spkiOf, spkiParts } from '../../manager/ca/keys.ts';
import { createRoot, encodeSubject, ROOT_PATH_LENGTH } from '../../manager/ca/root.ts';
import { name } from '../../protocol/der.ts';
import { openssl, opensslVerify, TmpDir } from './helpers.ts';

const DAY = 86_400_000;
const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - DAY + 750);
const notAfter = new Date(notBefore.getTime() + 3650 * DAY);

describe('manager/ca/root.ts', function () {
  this.timeout(60_000);
  const tmp = new TmpDir();
  after(() => tmp.remove());

  for (const algorithm of ['P-256', 'RSA-2048'] as const) {
    describe(`createRoot ${algorithm}`, () => {
      let cert: x509.X509Certificate;
      let pem: string;
      before(async () => {
        const root = await createRoot({ subject: 'CN=Fleet Root 2026,O=Example', algorithm, notBefore, notAfter });
        pem = root.cert;
        cert = new x509.X509Certificate(root.cert);
        assert.equal(algorithmOf(root.key), algorithm);
        assert.ok(spkiOf(root.key).equals(Buffer.from(cert.publicKey.rawData)), 'key and certificate belong together');
      });

      it('is self-signed with the requested subject, signature algorithm and second-precision validity', async () => {
        assert.equal(cert.subject, 'CN=Fleet Root 2026, O=Example');
        assert.equal(cert.issuer, cert.subject);
        assert.ok(await cert.verify({ signatureOnly: true }));
        assert.equal(cert.notBefore.getTime(), notBefore.getTime() - 750);
        assert.equal(cert.notAfter.getTime(), Math.floor(notAfter.getTime() / 1000) * 1000);
        const der = Buffer.from(cert.rawData);
      const sigAlg = rawChildren(der, readTlv(der, 0))[1]!;
      assert.equal(sigAlg.toString('hex'), algorithm === 'P-256' ? '300a06082a8648ce3d040302' : '300d06092a864886f70d01010b0500');
      assert.ok(sigAlg.equals(signatureAlgorithmDer(algorithm)));
      });

      it('carries critical CA:true pathLen 1 and critical keyCertSign|cRLSign|digitalSignature', () => {
        const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
        assert.ok(bc.critical && bc.ca);
        assert.equal(bc.pathLength, ROOT_PATH_LENGTH);
        const ku = cert.getExtension(x509.KeyUsagesExtension)!;
        assert.ok(ku.critical);
        assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature);
      });

      it('has SKI = SHA-1(subjectPublicKey) (RFC 5280 method 1) and AKI = SKI', async () => {
        const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
        const expected = createHash('sha1').update(spkiParts(Buffer.from(cert.publicKey.rawData)).subjectPublicKey).digest('hex');
        assert.equal(ski, expected);
        assert.equal(ski, Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex'));
        assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId, ski);
      });

      it('has a 16-octet positive random serial', () => {
        const serial = Buffer.from(cert.serialNumber, 'hex');
        assert.equal(serial.length, 16);
        assert.ok(serial[0]! > 0 && serial[0]! < 0x80);
      });

      it('encodes its subject with protocol/der.ts rules', () => {
        assert.ok(readCaCertificate(pem).subject.equals(name([['CN', 'Fleet Root 2026'], ['O', 'Example']])));
      });

      it('passes openssl verify -x509_strict as its own trust anchor, and node sees a CA', () => {
        const file = tmp.file(`root-${algorithm}.pem`, pem);
        const r = opensslVerify(file, file);
        assert.ok(r.ok, r.stderr);
        assert.ok(new X509Certificate(pem).ca);
        const text = openssl('x509', '-in', file, '-noout', '-ext', 'basicConstraints,keyUsage').stdout;
        assert.match(text, /critical[\s\S]*CA:TRUE, pathlen:1/);
        assert.match(text, /Digital Signature, Certificate Sign, CRL Sign/);
      });
    });
  }

  describe('input checks', () => {
    it('rejects notAfter <= notBefore before generating a key (E_CA_VALIDITY)', async () => {
      await assert.rejects(createRoot({ subject: 'CN=x', algorithm: 'P-256', notBefore, notAfter: notBefore }), (e) => isCaError(e, 'E_CA_VALIDITY'));
      await assert.rejects(createRoot({ subject: 'CN=x', algorithm: 'P-256', notBefore: new Date(Number.NaN), notAfter }), (e) => isCaError(e, 'E_CA_VALIDITY'));
    });

    it('rejects unknown algorithms (E_CA_ALGORITHM)', async () => {
      await assert.rejects(createRoot({ subject: 'CN=x', algorithm: 'RSA-1024' as 'P-256', notBefore, notAfter }), (e) => isCaError(e, 'E_CA_ALGORITHM'));
    });

    it('rejects subjects outside the profile (E_CA_SUBJECT) and accepts the supported ones', () => {
      for (const bad of ['', 'CN=a+O=b', 'X=1', 'E=a@b.example', 'C=Germany', 'CN=', `CN=${'x'.repeat(65)}`, 'CN=#0403414243']) {
        assert.throws(() => encodeSubject(bad), (e) => isCaError(e, 'E_CA_SUBJECT'), bad);
      }
      const der = encodeSubject('CN=Fleet Root, OU=Printers, O=Example GmbH, L=Köln, ST=NRW, C=DE, serialNumber=42');
      assert.ok(der.equals(name([['CN', 'Fleet Root'], ['OU', 'Printers'], ['O', 'Example GmbH'], ['L', 'Köln'], ['ST', 'NRW'], ['C', 'DE'], ['serialNumber', '42']])));
    });
  });
});
