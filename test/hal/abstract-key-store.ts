/**
 * The shared KeyStore suite (after MQTT.js's abstract_store): every backend
 * runs exactly these tests. `open` opens the backend on the same storage
 * each time, so the persistence test reopens it.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { KeyAlgorithm, KeyStore } from '../../hal/key-store.ts';
import { isHalError, type HalErrorCode } from '../../hal/errors.ts';

/** What a backend under test offers. */
export interface KeyStoreUnderTest {
  open(): Promise<KeyStore>;
  /** Algorithms the backend supports (P-256 always). */
  algorithms: KeyAlgorithm[];
  /** Expected `tlsKey()` kind. */
  tlsKind: 'pem' | 'pkcs11';
}

async function rejectsWith(p: Promise<unknown>, code: HalErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isHalError(err, code), `expected ${code}, got ${String(err)}`);
    return true;
  });
}

function verify(spki: Buffer, data: Buffer, sig: Buffer): boolean {
  return crypto.verify('sha256', data, { key: spki, format: 'der', type: 'spki' }, sig);
}


/** Registers the shared key store tests under `describe(name)`. */
export function abstractKeyStoreTests(name: string, sut: () => KeyStoreUnderTest): void {
  describe(`KeyStore contract: ${name}`, function () {
    this.timeout(60_000);
    let keys: KeyStore;
    let n = 0;
    const label = (p: string) => `${p}-${++n}`;
    beforeEach(async () => {
      keys = await sut().open();
    });
    afterEach(async () => {
      await keys.close();
    });

    it('creates a P-256 key whose signatures over a SHA-256 digest verify as DER ECDSA', async () => {
      const l = label('ec');
      const info = await keys.create(l, 'P-256');
      assert.equal(info.label, l);
      assert.equal(info.algorithm, 'P-256');
      const pub = crypto.createPublicKey({ key: info.spki, format: 'der', type: 'spki' });
      assert.equal(pub.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      const data = Buffer.from(`csr-to-be-signed ${l}`);
      const sig = await keys.sign(l, data);
      assert.equal(sig[0], 0x30, 'DER SEQUENCE');
      assert.ok(verify(info.spki, data, sig));
      assert.ok(!verify(info.spki, Buffer.from('other data'), sig), 'signature must not verify for other data');
    });

    it('creates an RSA-2048 key with PKCS#1 v1.5 signatures, or refuses it with E_HAL_ALGORITHM', async () => {
      const l = label('rsa');
      if (!sut().algorithms.includes('RSA-2048')) return rejectsWith(keys.create(l, 'RSA-2048'), 'E_HAL_ALGORITHM');
      const info = await keys.create(l, 'RSA-2048');
      assert.equal(info.algorithm, 'RSA-2048');
      assert.equal(crypto.createPublicKey({ key: info.spki, format: 'der', type: 'spki' }).asymmetricKeyDetails?.modulusLength, 2048);
      const data = Buffer.from('rsa data');
      const sig = await keys.sign(l, data);
      assert.equal(sig.length, 256);
      assert.ok(crypto.verify('sha256', data, { key: info.spki, format: 'der', type: 'spki', padding: crypto.constants.RSA_PKCS1_PADDING }, sig));
    });

    it('get returns the same public key, and null for an unknown label', async () => {
      const l = label('get');
      const info = await keys.create(l, 'P-256');
      const got = await keys.get(l);
      assert.ok(got);
      assert.ok(got.spki.equals(info.spki));
      assert.equal(await keys.get(label('absent')), null);
    });

    it('refuses a second key under the same label with E_HAL_KEY_EXISTS and keeps the first', async () => {
      const l = label('dup');
      const first = await keys.create(l, 'P-256');
      await rejectsWith(keys.create(l, 'P-256'), 'E_HAL_KEY_EXISTS');
      assert.ok((await keys.get(l))!.spki.equals(first.spki));
    });

    it('rejects unknown labels, bad labels and bad signing input with typed errors', async () => {
      await rejectsWith(keys.sign(label('nope'), Buffer.from('x')), 'E_HAL_KEY_NOT_FOUND');
      await rejectsWith(keys.destroy(label('nope')), 'E_HAL_KEY_NOT_FOUND');
      await rejectsWith(Promise.resolve().then(() => keys.create('../escape', 'P-256')), 'E_HAL_NAME');
      const l = label('dig');
      await keys.create(l, 'P-256');
      await rejectsWith(Promise.resolve().then(() => keys.sign(l, Buffer.alloc(0))), 'E_HAL_SIGN_INPUT');
      await rejectsWith(Promise.resolve().then(() => keys.sign(l, Buffer.alloc(65 * 1024))), 'E_HAL_SIGN_INPUT');
    });

    it('lists keys by label and destroy removes exactly one', async () => {
      const a = label('list-a');
      const b = label('list-b');
      await keys.create(a, 'P-256');
      await keys.create(b, 'P-256');
      const labels = (await keys.list()).map((k) => k.label);
      assert.ok(labels.includes(a) && labels.includes(b));
      assert.deepEqual(labels, [...labels].sort());
      await keys.destroy(a);
      assert.equal(await keys.get(a), null);
      assert.ok(await keys.get(b));
      await rejectsWith(keys.destroy(a), 'E_HAL_KEY_NOT_FOUND');
    });

    it('re-keys: a new key under a new label signs while the old one still does', async () => {
      const cur = label('device');
      const next = `${cur}.next`;
      const old = await keys.create(cur, 'P-256');
      const fresh = await keys.create(next, 'P-256');
      assert.ok(!old.spki.equals(fresh.spki));
      const data = Buffer.from('CertificationRequestInfo');
      assert.ok(verify(fresh.spki, data, await keys.sign(next, data)));
      assert.ok(verify(old.spki, data, await keys.sign(cur, data)));
    });

    it('keeps keys across close and reopen', async () => {
      const l = label('persist');
      const info = await keys.create(l, 'P-256');
      await keys.close();
      keys = await sut().open();
      const again = await keys.get(l);
      assert.ok(again?.spki.equals(info.spki));
      const data = Buffer.from('after restart');
      assert.ok(verify(info.spki, data, await keys.sign(l, data)));
    });

    it('serves concurrent signatures correctly', async () => {
      const l = label('conc');
      const info = await keys.create(l, 'P-256');
      const datas = Array.from({ length: 8 }, (_, i) => Buffer.from(`msg ${i}`));
      const sigs = await Promise.all(datas.map((d) => keys.sign(l, d)));
      sigs.forEach((s, i) => assert.ok(verify(info.spki, datas[i]!, s), `signature ${i}`));
    });

    it('reports health and offers TLS access of the expected kind', async () => {
      const h = await keys.health();
      assert.equal(h.ok, true, h.detail);
      assert.equal(h.backend, keys.backend);
      const l = label('tls');
      await keys.create(l, 'P-256');
      assert.ok(keys.tlsKey, 'tlsKey capability');
      const ref = await keys.tlsKey(l);
      assert.equal(ref.kind, sut().tlsKind);
      await rejectsWith(keys.tlsKey(label('absent')), 'E_HAL_KEY_NOT_FOUND');
    });
  });
}
