import { strict as assert } from 'node:assert';
import { ECDH, generateKeyPairSync, X509Certificate } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { isCaError } from '../../manager/ca/errors.ts';
import { isValidPublicPoint, spkiParts } from '../../manager/ca/keys.ts';
import { issueLeafWithLibrary, issueLeaves, LeafIssuer, type BatchStats, type LeafRequest } from '../../manager/ca/leaf-issuer.ts';
import { ipOctets } from '../../manager/ca/leaf-fast.ts';
import { createRoot, type RootMaterial } from '../../manager/ca/root.ts';
import { deviceKey, opensslVerify, tbsOf, TmpDir } from './helpers.ts';

const DAY = 86_400_000;
const now = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);

function request(spki: Buffer, extra: Partial<LeafRequest> = {}): LeafRequest {
  return { commonName: 'printer-17.example', publicKey: spki, profile: 'server', notBefore: now, notAfter: new Date(now.getTime() + 90 * DAY), ...extra };
}

describe('manager/ca/leaf-issuer.ts', function () {
  this.timeout(120_000);
  const tmp = new TmpDir();
  after(() => tmp.remove());
  const roots: Record<string, RootMaterial> = {};
  before(async () => {
    for (const algorithm of ['P-256', 'RSA-2048'] as const) {
      roots[algorithm] = await createRoot({ subject: `CN=Fleet Root ${algorithm},O=Example`, algorithm, notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + 3650 * DAY) });
    }
  });

  for (const issuerAlg of ['P-256', 'RSA-2048'] as const) {
    for (const subjectAlg of ['P-256', 'RSA-2048'] as const) {
      describe(`issuer ${issuerAlg}, device key ${subjectAlg}`, () => {
        const device = deviceKey(subjectAlg);
        const variants: Array<[string, Partial<LeafRequest>]> = [
          ['server, default SAN', {}],
          ['client, no SAN', { profile: 'client', commonName: 'mgmt-client 7' }],
          ['server, every SAN type, UTF-8 CN, high-bit serial', {
            commonName: 'Drucker Büro 3', dnsNames: ['printer-17.example', 'ipp.printer-17.example'], uris: ['urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66'],
            ipAddresses: ['192.0.2.17', '2001:db8::17'], serial: Buffer.from('ff00000000000000000000000000000001', 'hex'),
          }],
          ['client, validity past 2049 (GeneralizedTime)', { profile: 'client', notAfter: new Date('2051-06-30T12:00:00Z'), serial: Buffer.from('01', 'hex') }],
        ];
        for (const [title, extra] of variants) {
          it(`${title}: fast TBSCertificate is byte-identical to @peculiar/x509's`, async () => {
            const req = request(device.spki, { serial: Buffer.from('3a5f00c0ffee', 'hex'), ...extra });
            const issuer = new LeafIssuer(roots[issuerAlg]!);
            const fast = issuer.issue(req);
            const lib = await issueLeafWithLibrary(roots[issuerAlg]!, req);
            assert.equal(tbsOf(fast).toString('hex'), tbsOf(lib).toString('hex'));
            assert.equal(issuer.tbs(req).toString('hex'), tbsOf(fast).toString('hex'));
          });
        }

        it('fast-path leaves pass openssl verify -x509_strict for their purpose only', () => {
          const issuer = new LeafIssuer(roots[issuerAlg]!);
          const ca = tmp.file(`ca-${issuerAlg}.pem`, roots[issuerAlg]!.cert);
          const server = tmp.file(`s-${issuerAlg}-${subjectAlg}.pem`, issuer.issue(request(device.spki, { ipAddresses: ['10.0.0.17'] })));
          const client = tmp.file(`c-${issuerAlg}-${subjectAlg}.pem`, issuer.issue(request(device.spki, { profile: 'client', commonName: 'mgmt client' })));
          for (const [file, ok, bad] of [[server, 'sslserver', 'sslclient'], [client, 'sslclient', 'sslserver']] as const) {
            const r = opensslVerify(ca, file, '-purpose', ok);
            assert.ok(r.ok, r.stderr);
            assert.ok(!opensslVerify(ca, file, '-purpose', bad).ok, `${file} must not verify for ${bad}`);
          }
        });

        it('carries the leaf profile', () => {
          const cert = new x509.X509Certificate(new LeafIssuer(roots[issuerAlg]!).issue(request(device.spki)));
          const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
          assert.ok(bc.critical && !bc.ca);
          const ku = cert.getExtension(x509.KeyUsagesExtension)!;
          assert.ok(ku.critical);
          assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | (subjectAlg === 'RSA-2048' ? x509.KeyUsageFlags.keyEncipherment : 0));
          assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth]);
          const rootSki = new x509.X509Certificate(roots[issuerAlg]!.cert).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
          assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId, rootSki);
          assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), [{ type: 'dns', value: 'printer-17.example' }]);
          assert.ok(new X509Certificate(cert.toString('pem')).verify(new X509Certificate(roots[issuerAlg]!.cert).publicKey));
        });
      });
    }
  }

  describe('request validation', () => {
    const ec = deviceKey('P-256');
    let issuer: LeafIssuer;
    before(() => { issuer = new LeafIssuer(roots['P-256']!); });
    const rejects = (req: LeafRequest, code: 'E_LEAF_REQUEST' | 'E_CA_ALGORITHM', pattern?: RegExp): void => {
      assert.throws(() => issuer.issue(req), (e) => isCaError(e, code) && (!pattern || pattern.test((e as Error).message)));
    };

    it('accepts P-384 device keys and RSA up to 4096', () => {
      assert.doesNotThrow(() => issuer.issue(request(deviceKey('P-384').spki)));
      const rsa4096 = generateKeyPairSync('rsa', { modulusLength: 4096 }).publicKey.export({ type: 'spki', format: 'der' });
      assert.doesNotThrow(() => issuer.issue(request(rsa4096)));
    });

    it('rejects weak or unsupported device keys (E_CA_ALGORITHM)', () => {
      rejects(request(deviceKey('RSA-1024').spki), 'E_CA_ALGORITHM', /RSA-1024/);
      rejects(request(deviceKey('Ed25519').spki), 'E_CA_ALGORITHM');
      const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'der' });
      rejects(request(k1), 'E_CA_ALGORITHM');
    });

    it('rejects malformed keys and off-curve points (E_LEAF_REQUEST)', () => {
      rejects(request(Buffer.from('3003020100', 'hex')), 'E_LEAF_REQUEST');
      rejects(request(Buffer.concat([ec.spki, Buffer.from([0])])), 'E_LEAF_REQUEST');
      const off = Buffer.from(ec.spki);
      off[off.length - 1]! ^= 1;
      rejects(request(off), 'E_LEAF_REQUEST', /not a valid point/);
    });

    it('checks EC points exactly as OpenSSL does (P-256, P-384, compressed)', () => {
      for (const curve of ['prime256v1', 'secp384r1']) {
        for (let i = 0; i < 40; i++) {
          const spki = generateKeyPairSync('ec', { namedCurve: curve }).publicKey.export({ type: 'spki', format: 'der' });
          const point = spkiParts(spki).subjectPublicKey;
          assert.ok(isValidPublicPoint(point, curve));
          const bad = Buffer.from(point);
          bad[1 + (i % (bad.length - 1))]! ^= 1 << (i % 8);
          let openssl = true;
          try { ECDH.convertKey(bad, curve); } catch { openssl = false; }
          assert.equal(isValidPublicPoint(bad, curve), openssl);
          const compressed = ECDH.convertKey(point, curve, undefined, undefined, 'compressed') as Buffer;
          assert.ok(isValidPublicPoint(compressed, curve));
        }
      }
    });

    it('rejects bad validity, names, serials and profiles (E_LEAF_REQUEST)', () => {
      rejects(request(ec.spki, { notAfter: now }), 'E_LEAF_REQUEST', /validity/);
      rejects(request(ec.spki, { notAfter: new Date(now.getTime() + 999) }), 'E_LEAF_REQUEST', /validity/);
      rejects(request(ec.spki, { notBefore: new Date(Number.NaN) }), 'E_LEAF_REQUEST');
      rejects(request(ec.spki, { commonName: '' }), 'E_LEAF_REQUEST', /commonName/);
      rejects(request(ec.spki, { commonName: 'x'.repeat(65) }), 'E_LEAF_REQUEST', /commonName/);
      rejects(request(ec.spki, { commonName: 'Drucker Büro' }), 'E_LEAF_REQUEST', /subjectAltName/);
      rejects(request(ec.spki, { dnsNames: ['*.example'] }), 'E_LEAF_REQUEST', /dnsNames/);
      rejects(request(ec.spki, { dnsNames: ['bad_name.example'] }), 'E_LEAF_REQUEST', /dnsNames/);
      rejects(request(ec.spki, { uris: ['no scheme'] }), 'E_LEAF_REQUEST', /uris/);
      rejects(request(ec.spki, { ipAddresses: ['300.1.1.1'] }), 'E_LEAF_REQUEST', /ipAddresses/);
      rejects(request(ec.spki, { ipAddresses: ['fe80::1%eth0'] }), 'E_LEAF_REQUEST', /ipAddresses/);
      rejects(request(ec.spki, { serial: Buffer.alloc(4) }), 'E_LEAF_REQUEST', /serial/);
      rejects(request(ec.spki, { serial: Buffer.alloc(20, 0xff) }), 'E_LEAF_REQUEST', /serial/);
      rejects(request(ec.spki, { profile: 'ca' as 'server' }), 'E_LEAF_REQUEST', /profile/);
      assert.doesNotThrow(() => issuer.issue(request(ec.spki, { serial: Buffer.concat([Buffer.alloc(3), Buffer.alloc(20, 0x7f)]) })));
    });

    it('parses IPv4 and IPv6 literals to octets', () => {
      assert.equal(ipOctets('192.0.2.1')?.toString('hex'), 'c0000201');
      assert.equal(ipOctets('::1')?.toString('hex'), `${'0'.repeat(30)}01`);
      assert.equal(ipOctets('2001:db8::17')?.toString('hex'), '20010db8000000000000000000000017');
      assert.equal(ipOctets('::ffff:192.0.2.1')?.toString('hex'), '00000000000000000000ffffc0000201');
      assert.equal(ipOctets('1:2:3:4:5:6:7:8')?.toString('hex'), '00010002000300040005000600070008');
      for (const bad of ['', '1.2.3', '::g', '1::2::3', 'localhost']) assert.equal(ipOctets(bad), null, bad);
    });

    it('draws random 16-octet positive serials', () => {
      const seen = new Set<string>();
      for (let i = 0; i < 500; i++) {
        const serial = new x509.X509Certificate(issuer.issue(request(ec.spki))).serialNumber;
        assert.equal(serial.length, 32);
        assert.ok(parseInt(serial.slice(0, 2), 16) >= 1 && parseInt(serial.slice(0, 2), 16) < 0x80);
        seen.add(serial);
      }
      assert.equal(seen.size, 500);
    });

    it('refuses an issuer that is not a CA or whose key does not match', async () => {
      const leaf = issuer.issue(request(ec.spki));
      assert.throws(() => new LeafIssuer({ cert: leaf, key: ec.key }), (e) => isCaError(e, 'E_CA_NOT_CA'));
      assert.throws(() => new LeafIssuer({ cert: roots['P-256']!.cert, key: roots['RSA-2048']!.key }), (e) => isCaError(e, 'E_CA_KEY_MISMATCH'));
      assert.throws(() => new LeafIssuer({ cert: 'not a certificate', key: ec.key }), (e) => isCaError(e, 'E_CA_CERT_MALFORMED'));
    });
  });

  describe('issueLeaves', () => {
    const keys = [deviceKey('P-256'), deviceKey('RSA-2048')];
    const batch = (n: number): LeafRequest[] =>
      Array.from({ length: n }, (_, i) => request(keys[i % 2]!.spki, { commonName: `printer-${i}.example`, profile: i % 3 ? 'server' : 'client' }));

    it('issues small batches inline, in order', async () => {
      const reqs = batch(20);
      let stats: BatchStats | undefined;
      const pems = await issueLeaves(roots['P-256']!, reqs, { onStats: (s) => { stats = s; } });
      assert.deepEqual(stats, { callingThread: 20, workers: [] });
      assert.deepEqual(pems.map((p) => new X509Certificate(p).subject), reqs.map((r) => `CN=${r.commonName}`));
    });

    it('spreads a batch over .ts worker threads (tsx) and keeps request order', async () => {
      const reqs = batch(1500);
      let stats: BatchStats | undefined;
      const pems = await issueLeaves(roots['P-256']!, reqs, { workers: 2, minParallelBatch: 1, useCallingThread: false, onStats: (s) => { stats = s; } });
      assert.equal(stats?.callingThread, 0);
      assert.equal(stats.workers.length, 2);
      assert.equal(stats.workers.reduce((a, b) => a + b, 0), reqs.length);
      assert.equal(pems.length, reqs.length);
      const root = new X509Certificate(roots['P-256']!.cert);
      pems.forEach((p, i) => {
        const cert = new X509Certificate(p);
        assert.equal(cert.subject, `CN=${reqs[i]!.commonName}`);
        assert.ok(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(reqs[i]!.publicKey));
        if (i % 50 === 0) assert.ok(cert.verify(root.publicKey));
      });
    });

    it('rejects the batch with the failing request\'s CaError, from a worker too', async () => {
      const reqs = batch(1500);
      reqs[1400] = request(keys[0]!.spki, { commonName: 'bad', dnsNames: ['bad_name'] });
      await assert.rejects(issueLeaves(roots['P-256']!, reqs, { workers: 1, useCallingThread: false, minParallelBatch: 1 }), (e) => isCaError(e, 'E_LEAF_REQUEST') && /bad_name/.test((e as Error).message));
      await assert.rejects(issueLeaves(roots['P-256']!, reqs.slice(1390, 1410)), (e) => isCaError(e, 'E_LEAF_REQUEST'));
    });
  });
});
