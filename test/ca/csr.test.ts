import { strict as assert } from 'node:assert';
import { constants, createHash, privateEncrypt, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isCaError } from '../../manager/ca/errors.ts';
import { verifyCsr } from '../../manager/ca/csr.ts';
import { pemToDer, derToPem } from '../../manager/ca/pem.ts';
import { buildCsr, CsrBuildError, SHA256_DIGEST_INFO_PREFIX } from '../../protocol/csr.ts';
import { integer, sequence } from '../../protocol/der.ts';
import { deviceKey, openssl, TmpDir } from './helpers.ts';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

/** ECDSA the way a token does it: the host hashes, `openssl pkeyutl` signs the digest as is. */
function pkeyutlSigner(tmp: TmpDir, key: KeyObject): (data: Buffer) => Promise<Buffer> {
  const keyFile = tmp.file(`k-${Math.random().toString(36).slice(2)}.pem`, key.export({ type: 'pkcs8', format: 'pem' }) as string);
  return async (data) => {
    const input = tmp.file('digest.bin', sha256(data));
    const out = `${tmp.path}/sig.bin`;
    const r = openssl('pkeyutl', '-sign', '-inkey', keyFile, '-in', input, '-out', out);
    assert.ok(r.ok, r.stderr);
    return readFileSync(out);
  };
}

/** RSASSA-PKCS1-v1_5 built by hand over DigestInfo(SHA-256(data)), as a token does it. */
function rsaDigestSigner(key: KeyObject): (data: Buffer) => Promise<Buffer> {
  return async (data) => privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO_PREFIX, sha256(data)]));
}

/** DER ECDSA-Sig-Value → raw r‖s (32 + 32 octets), as PKCS#11 CKM_ECDSA returns it. */
function derToRaw(sig: Buffer): Buffer {
  const r = sig.subarray(4, 4 + sig[3]!);
  const s = sig.subarray(6 + r.length);
  const fix = (v: Buffer): Buffer => Buffer.concat([Buffer.alloc(32), v]).subarray(-32);
  return Buffer.concat([fix(r), fix(s)]);
}

describe('CSR: protocol/csr.ts buildCsr and manager/ca/csr.ts verifyCsr', function () {
  this.timeout(60_000);
  const tmp = new TmpDir();
  after(() => tmp.remove());
  const ec = deviceKey('P-256');
  const rsa = deviceKey('RSA-2048');

  it('node:crypto cannot sign a precomputed digest with ECDSA: sign(null, digest) hashes it again', () => {
    const digest = createHash('sha256').update('data').digest();
    const sig = sign(null, digest, ec.key);
    const pub = { key: ec.spki, format: 'der', type: 'spki' } as const;
    assert.ok(verify('sha256', digest, pub, sig), 'verifies as ECDSA over SHA-256(digest)');
    assert.ok(!verify('sha256', Buffer.from('data'), pub, sig), 'so it is not a signature over digest');
  });

  for (const [label, key, algorithm, signer] of [
    ['P-256 via openssl pkeyutl (DER)', ec, 'P-256', () => pkeyutlSigner(tmp, ec.key)],
    ['P-256 via a raw r‖s signer (PKCS#11 style)', ec, 'P-256', () => { const s = pkeyutlSigner(tmp, ec.key); return async (d: Buffer) => derToRaw(await s(d)); }],
    ['RSA-2048 via privateEncrypt over DigestInfo', rsa, 'RSA-2048', () => rsaDigestSigner(rsa.key)],
    ['P-256 via node:crypto sign (software HAL)', ec, 'P-256', () => async (d: Buffer) => sign('sha256', d, ec.key)],
    ['RSA-2048 via node:crypto sign (software HAL)', rsa, 'RSA-2048', () => async (d: Buffer) => sign('sha256', d, rsa.key)],
  ] as const) {
    it(`${label}: openssl req -verify accepts it and verifyCsr returns key and CN`, async () => {
      const pem = await buildCsr({ commonName: 'printer-17.example', spki: key.spki, algorithm, sign: signer() });
      const r = openssl('req', '-in', tmp.file('req.pem', pem), '-noout', '-verify', '-subject');
      assert.ok(r.ok, r.stderr);
      assert.match(r.stdout + r.stderr, /verify OK/i);
      assert.match(r.stdout, /subject=CN ?= ?printer-17\.example/);
      const v = verifyCsr(pem);
      assert.ok(v.publicKey.equals(key.spki));
      assert.equal(v.commonName, 'printer-17.example');
      assert.equal(v.subject, 'CN=printer-17.example');
    });
  }

  it('buildCsr refuses a signer that hashes twice, or signs with another key', async () => {
    await assert.rejects(buildCsr({ commonName: 'p', spki: ec.spki, algorithm: 'P-256', sign: async (d) => sign('sha256', sha256(d), ec.key) }), CsrBuildError);
    const other = deviceKey('P-256');
    await assert.rejects(buildCsr({ commonName: 'p', spki: ec.spki, algorithm: 'P-256', sign: pkeyutlSigner(tmp, other.key) }), /E_CSR_BUILD: .*does not verify/);
  });

  it('buildCsr refuses mismatched algorithms and unusable names', async () => {
    await assert.rejects(buildCsr({ commonName: 'p', spki: rsa.spki, algorithm: 'P-256', sign: rsaDigestSigner(rsa.key) }), /not P-256/);
    await assert.rejects(buildCsr({ commonName: 'p', spki: Buffer.from('3000', 'hex'), algorithm: 'P-256', sign: rsaDigestSigner(rsa.key) }), CsrBuildError);
    await assert.rejects(buildCsr({ commonName: '', spki: rsa.spki, algorithm: 'RSA-2048', sign: rsaDigestSigner(rsa.key) }), /commonName/);
  });

  describe('verifyCsr', () => {
    let good: string;
    before(async () => {
      good = await buildCsr({ commonName: 'printer-17.example', spki: ec.spki, algorithm: 'P-256', sign: pkeyutlSigner(tmp, ec.key) });
    });

    it('rejects a tampered request (E_CSR_SIGNATURE)', () => {
      const der = pemToDer(good, 'CERTIFICATE REQUEST');
      const at = der.indexOf(Buffer.from('printer-17'));
      der[at + 8] = '9'.charCodeAt(0);
      assert.throws(() => verifyCsr(derToPem(der, 'CERTIFICATE REQUEST')), (e) => isCaError(e, 'E_CSR_SIGNATURE'));
      const sigFlip = pemToDer(good, 'CERTIFICATE REQUEST');
      sigFlip[sigFlip.length - 3]! ^= 1;
      assert.throws(() => verifyCsr(derToPem(sigFlip, 'CERTIFICATE REQUEST')), (e) => isCaError(e, 'E_CSR_SIGNATURE'));
    });

    it('rejects a request whose key was swapped (E_CSR_SIGNATURE)', () => {
      const other = deviceKey('P-256');
      const der = pemToDer(good, 'CERTIFICATE REQUEST');
      const at = der.indexOf(ec.spki);
      other.spki.copy(der, at);
      assert.throws(() => verifyCsr(derToPem(der, 'CERTIFICATE REQUEST')), (e) => isCaError(e, 'E_CSR_SIGNATURE'));
    });

    it('rejects malformed input (E_CSR_MALFORMED)', () => {
      const der = pemToDer(good, 'CERTIFICATE REQUEST');
      for (const bad of [
        '', 'garbage', good.replace('CERTIFICATE REQUEST', 'CERTIFICATE'),
        derToPem(der.subarray(0, der.length - 5), 'CERTIFICATE REQUEST'),
        derToPem(Buffer.concat([der, Buffer.from([0])]), 'CERTIFICATE REQUEST'),
        derToPem(sequence(integer(1)), 'CERTIFICATE REQUEST'),
        'x'.repeat(20_000),
      ]) {
        assert.throws(() => verifyCsr(bad), (e) => isCaError(e, 'E_CSR_MALFORMED'), bad.slice(0, 40));
      }
    });

    it('accepts requests made by openssl req (P-256 and RSA-2048, NEW CERTIFICATE REQUEST label too)', () => {
      for (const [alg, keyArgs] of [['ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']], ['rsa', ['-newkey', 'rsa:2048']]] as const) {
        const out = `${tmp.path}/o-${alg}.csr`;
        const r = openssl('req', '-new', ...keyArgs, '-nodes', '-keyout', `${tmp.path}/o-${alg}.key`, '-subj', '/CN=mfp-3.example/O=Example', '-sha256', '-out', out);
        assert.ok(r.ok, r.stderr);
        const pem = readFileSync(out, 'utf8');
        const v = verifyCsr(pem);
        assert.equal(v.commonName, 'mfp-3.example');
        assert.equal(v.subject, 'CN=mfp-3.example, O=Example');
        assert.ok(verifyCsr(pem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST')));
      }
    });

    it('rejects requests without a CN (E_CSR_MALFORMED), with weak keys or other digests (E_CA_ALGORITHM)', () => {
      const make = (name: string, ...args: string[]): string => {
        const out = `${tmp.path}/${name}.csr`;
        const r = openssl('req', '-new', '-nodes', '-keyout', `${tmp.path}/${name}.key`, '-out', out, ...args);
        assert.ok(r.ok, r.stderr);
        return readFileSync(out, 'utf8');
      };
      assert.throws(() => verifyCsr(make('nocn', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/O=Example')), (e) => isCaError(e, 'E_CSR_MALFORMED') && /commonName/.test((e as Error).message));
      assert.throws(() => verifyCsr(make('weak', '-newkey', 'rsa:1024', '-subj', '/CN=x')), (e) => isCaError(e, 'E_CA_ALGORITHM'));
      assert.throws(() => verifyCsr(make('sha384', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha384', '-subj', '/CN=x')), (e) => isCaError(e, 'E_CA_ALGORITHM'));
    });
  });
});
