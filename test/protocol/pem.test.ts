import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { fingerprint, fingerprintPem, parseCertificate, spkiOf } from '../../protocol/pem.ts';
import { issuedBy } from '../../protocol/chain.ts';

const selfSigned = (key: string[]) => execFileSync('openssl', ['req', '-x509', '-newkey', ...key, '-nodes', '-keyout', '/dev/null', '-subj', '/CN=pem-test', '-days', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

describe('protocol/pem.ts and chain.ts fast paths agree with node:crypto', () => {
  for (const [name, key] of [['P-256', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']], ['RSA-2048', ['rsa:2048']]] as const) {
    it(`${name}: spkiOf reads the same SubjectPublicKeyInfo node:crypto exports, fingerprintPem equals fingerprint`, () => {
      const pem = selfSigned([...key]);
      const cert = new X509Certificate(pem);
      assert.ok(spkiOf(cert).equals(cert.publicKey.export({ type: 'spki', format: 'der' })));
      assert.equal(fingerprintPem(pem), fingerprint(cert));
    });
  }

  it('parseCertificate keeps recently used certificates cached and issuedBy memoizes verdicts per pair', () => {
    const a = selfSigned(['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
    const b = selfSigned(['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
    const ca = parseCertificate(a, 'a');
    assert.equal(parseCertificate(a, 'a'), ca, 'same object for the same text');
    const cb = parseCertificate(b, 'b');
    assert.equal(issuedBy(ca, ca), true);
    assert.equal(issuedBy(ca, cb), false);
    assert.equal(issuedBy(ca, cb), false, 'memoized verdict is the same');
  });
});
