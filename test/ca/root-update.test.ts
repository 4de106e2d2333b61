import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { readCaCertificate } from '../../manager/ca/cert-info.ts';
import { isCaError } from '../../manager/ca/errors.ts';
import { algorithmOf, type CaKeyAlgorithm } from '../../manager/ca/keys.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { createRoot, CROSS_PATH_LENGTH, type RootMaterial } from '../../manager/ca/root.ts';
import { createRootUpdate, type RootUpdate } from '../../manager/ca/root-update.ts';
import { checkDistribution, checkNewRoot } from '../../protocol/cert-checks.ts';
import { bundle, deviceKey, opensslVerify, run, TmpDir } from './helpers.ts';

const DAY = 86_400_000;
const seconds = (d: Date): number => Math.floor(d.getTime() / 1000) * 1000;

function hasCerttool(): boolean {
  try {
    execFileSync('certtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Case {
  readonly title: string;
  readonly oldAlgorithm: CaKeyAlgorithm;
  readonly newAlgorithm?: CaKeyAlgorithm;
  readonly newSubject?: string;
}

const CASES: readonly Case[] = [
  { title: 'same DN, P-256 → P-256', oldAlgorithm: 'P-256' },
  { title: 'new DN, P-256 → RSA-2048', oldAlgorithm: 'P-256', newAlgorithm: 'RSA-2048', newSubject: 'CN=Fleet Root 2027,O=Example' },
  { title: 'same DN, RSA-2048 → RSA-3072', oldAlgorithm: 'RSA-2048', newAlgorithm: 'RSA-3072' },
  { title: 'new DN, RSA-2048 → RSA-2048 (default: K1 keeps K0\'s algorithm)', oldAlgorithm: 'RSA-2048', newSubject: 'CN=Fleet Root 2027,O=Example' },
  { title: 'same DN, P-384 → P-384', oldAlgorithm: 'P-384' },
  { title: 'new DN, RSA-2048 → P-384', oldAlgorithm: 'RSA-2048', newAlgorithm: 'P-384', newSubject: 'CN=Fleet Root 2027,O=Example' },
];

describe('manager/ca/root-update.ts', function () {
  this.timeout(120_000);
  const tmp = new TmpDir();
  after(() => tmp.remove());

  for (const c of CASES) {
    describe(c.title, () => {
      const now = new Date(Date.now() - 60_000 + 123);
      let old: RootMaterial;
      let update: RootUpdate;
      let r0: X509Certificate, d: X509Certificate, r1: X509Certificate, own: X509Certificate;
      const f: Record<string, string> = {};

      before(async () => {
        old = await createRoot({ subject: 'CN=Fleet Root 2026,O=Example', algorithm: c.oldAlgorithm, notBefore: new Date(now.getTime() - 30 * DAY), notAfter: new Date(now.getTime() + 365 * DAY) });
        update = await createRootUpdate({ old, now, lifetimeDays: 3650, subject: c.newSubject, algorithm: c.newAlgorithm });
        [r0, d, r1, own] = [old.cert, update.distribution, update.next.cert, update.oldWithNew].map((p) => new X509Certificate(p)) as [X509Certificate, X509Certificate, X509Certificate, X509Certificate];
        const device = deviceKey('P-256');
        const leafReq = { commonName: 'printer-1.example', publicKey: device.spki, profile: 'server' as const, notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 30 * DAY) };
        const slug = c.title.replace(/\W+/g, '-');
        Object.assign(f, {
          r0: tmp.file(`${slug}-r0.pem`, old.cert),
          r1: tmp.file(`${slug}-r1.pem`, update.next.cert),
          d: tmp.file(`${slug}-d.pem`, update.distribution),
          own: tmp.file(`${slug}-own.pem`, update.oldWithNew),
          r0d: tmp.file(`${slug}-r0d.pem`, bundle(old.cert, update.distribution)),
          dr0: tmp.file(`${slug}-dr0.pem`, bundle(update.distribution, old.cert)),
          leaf1: tmp.file(`${slug}-leaf1.pem`, new LeafIssuer(update.next).issue(leafReq)),
          leaf0: tmp.file(`${slug}-leaf0.pem`, new LeafIssuer(old).issue(leafReq)),
        });
      });

      it('R1 is self-signed by K1 with the expected subject, algorithm and validity', () => {
        assert.ok(r1.checkIssued(r1) && r1.verify(r1.publicKey));
        assert.equal(r1.subject, c.newSubject ? 'CN=Fleet Root 2027\nO=Example' : r0.subject);
        assert.equal(algorithmOf(update.next.key), c.newAlgorithm ?? c.oldAlgorithm);
        assert.equal(new Date(r1.validFrom).getTime(), seconds(now));
        assert.equal(new Date(r1.validTo).getTime(), seconds(now) + 3650 * DAY);
        assert.ok(r1.ca);
      });

      it('D is K1 certified by K0: names copied byte for byte, AKI = R0 SKI, SKI = R1 SKI', () => {
        const [i0, iD, i1] = [old.cert, update.distribution, update.next.cert].map(readCaCertificate) as [ReturnType<typeof readCaCertificate>, ReturnType<typeof readCaCertificate>, ReturnType<typeof readCaCertificate>];
        assert.ok(iD.issuer.equals(i0.subject));
        assert.ok(iD.subject.equals(i1.subject));
        assert.ok(iD.spki.equals(i1.spki));
        assert.ok(iD.keyId.equals(i1.keyId));
        assert.ok(d.verify(r0.publicKey));
        assert.ok(!d.verify(r1.publicKey));
        const dx = new x509.X509Certificate(update.distribution);
        assert.equal(dx.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId, i0.keyId.toString('hex'));
        const bc = dx.getExtension(x509.BasicConstraintsExtension)!;
        assert.ok(bc.critical && bc.ca && bc.pathLength === CROSS_PATH_LENGTH);
        assert.ok(dx.getExtension(x509.KeyUsagesExtension)!.usages & x509.KeyUsageFlags.keyCertSign);
      });

      it('D validity: notBefore = R1 notBefore, notAfter = min(R0, R1) = R0 notAfter', () => {
        assert.equal(d.validFrom, r1.validFrom);
        assert.equal(d.validTo, r0.validTo);
      });

      it('OldWithNew is K0 certified by K1 with R0\'s validity', () => {
        assert.ok(own.publicKey.equals(r0.publicKey));
        assert.ok(own.verify(r1.publicKey));
        assert.equal(own.subject, r0.subject);
        assert.equal(own.issuer, r1.subject);
        assert.equal(own.validFrom, r0.validFrom);
        assert.equal(own.validTo, r0.validTo);
      });

      it('passes the device checks of RFC 9810 §4.4.2.2 (protocol/cert-checks.ts)', () => {
        assert.doesNotThrow(() => checkDistribution(d, r0, new Date()));
        assert.doesNotThrow(() => checkNewRoot(r1, d, new Date()));
      });

      it('(a) a leaf signed by K1 verifies with R0+D and with R1 (OpenSSL, strict)', () => {
        for (const ca of [f.r0d!, f.dr0!, f.r1!]) {
          const r = opensslVerify(ca, f.leaf1!, '-purpose', 'sslserver');
          assert.ok(r.ok, `${ca}: ${r.stderr}`);
        }
      });

      it('(b) a leaf signed by K0 verifies with R0+D but not with R1 alone', () => {
        for (const ca of [f.r0d!, f.dr0!]) {
          const r = opensslVerify(ca, f.leaf0!, '-purpose', 'sslserver');
          assert.ok(r.ok, `${ca}: ${r.stderr}`);
        }
        const bad = opensslVerify(f.r1!, f.leaf0!);
        assert.ok(!bad.ok);
        assert.match(bad.stderr, /error 20 .*unable to get local issuer certificate/);
      });

      it('(c) D verifies against R0 alone; R1 does not', () => {
        const r = opensslVerify(f.r0!, f.d!);
        assert.ok(r.ok, r.stderr);
        assert.ok(!opensslVerify(f.r0!, f.r1!).ok);
      });

      it('OldWithNew lets a holder of R1 alone verify K0\'s leaves', () => {
        const r = opensslVerify(f.r1!, f.leaf0!, '-untrusted', f.own!);
        assert.ok(r.ok, r.stderr);
      });

      it('GnuTLS (certtool) builds the same paths, in either trust-store order', function () {
        if (!hasCerttool()) this.skip();
        const verify = (ca: string, cert: string): boolean =>
          /Chain verification output: Verified/.test(run('certtool', ['--verify', '--load-ca-certificate', ca, '--infile', cert]).stdout);
        for (const ca of [f.r0d!, f.dr0!]) {
          assert.ok(verify(ca, f.leaf0!), `leaf0 via ${ca}`);
          assert.ok(verify(ca, f.leaf1!), `leaf1 via ${ca}`);
        }
        assert.ok(verify(f.r1!, f.leaf1!));
        assert.ok(!verify(f.r1!, f.leaf0!));
      });
    });
  }

  describe('validity rules and input checks', () => {
    let old: RootMaterial;
    const r0Start = new Date('2024-01-01T00:00:00Z');
    const r0End = new Date('2025-01-01T00:00:00Z');
    before(async () => {
      old = await createRoot({ subject: 'CN=Old Root', algorithm: 'P-256', notBefore: r0Start, notAfter: r0End });
    });

    it('D ends with R1 when R1 ends before R0', async () => {
      const now = new Date('2024-06-01T12:00:00.999Z');
      const u = await createRootUpdate({ old, now, lifetimeDays: 30 });
      const d = new X509Certificate(u.distribution);
      const r1 = new X509Certificate(u.next.cert);
      assert.equal(d.validTo, r1.validTo);
      assert.equal(new Date(d.validFrom).toISOString(), '2024-06-01T12:00:00.000Z');
      assert.equal(new Date(r1.validTo).toISOString(), '2024-07-01T12:00:00.000Z');
    });

    it('throws E_CA_VALIDITY when R1 would start at or after R0 expires', async () => {
      for (const now of [r0End, new Date('2026-01-01T00:00:00Z')]) {
        await assert.rejects(createRootUpdate({ old, now, lifetimeDays: 3650 }), (e) => isCaError(e, 'E_CA_VALIDITY') && /expired/.test((e as Error).message));
      }
    });

    it('throws E_CA_VALIDITY before R0 starts and for a non-positive lifetime', async () => {
      await assert.rejects(createRootUpdate({ old, now: new Date('2023-12-31T00:00:00Z'), lifetimeDays: 10 }), (e) => isCaError(e, 'E_CA_VALIDITY'));
      for (const lifetimeDays of [0, -1, Number.NaN]) {
        await assert.rejects(createRootUpdate({ old, now: new Date('2024-06-01T00:00:00Z'), lifetimeDays }), (e) => isCaError(e, 'E_CA_VALIDITY'));
      }
    });

    it('throws E_CA_KEY_MISMATCH when the key is not R0\'s', async () => {
      const other = await createRoot({ subject: 'CN=Other', algorithm: 'P-256', notBefore: r0Start, notAfter: r0End });
      await assert.rejects(createRootUpdate({ old: { cert: old.cert, key: other.key }, now: new Date('2024-06-01T00:00:00Z'), lifetimeDays: 10 }), (e) => isCaError(e, 'E_CA_KEY_MISMATCH'));
    });
  });
});
