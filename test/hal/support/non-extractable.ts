/**
 * Proof that a token private key cannot be read out: its value attribute is
 * refused, it is flagged sensitive / never extractable, it cannot be made
 * extractable, and wrapping it under a key we control fails.
 */
import assert from 'node:assert/strict';
import pkcs11js from 'pkcs11js';
import type { Pkcs11KeyStore } from '../../../hal/pkcs11/pkcs11-key-store.ts';

function findPrivate(p11: pkcs11js.PKCS11, session: Buffer, label: string): Buffer {
  p11.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  const [h] = p11.C_FindObjects(session, 1);
  p11.C_FindObjectsFinal(session);
  assert.ok(h, `private key ${label} found`);
  return h;
}

const bool = (v: unknown) => Buffer.isBuffer(v) && v.length > 0 && v[0] === 1;

/** Asserts every way of reading key `label` out of the token fails. */
export function assertPrivateKeyNotExtractable(keys: Pkcs11KeyStore, label: string, expectFlagFlip: 'refused' | 'accepted'): void {
  const { p11, session } = keys.unsafeTokenAccess();
  const h = findPrivate(p11, session, label);
  const [kt] = p11.C_GetAttributeValue(session, h, [{ type: pkcs11js.CKA_KEY_TYPE }]);
  const rsa = Number((kt!.value as Buffer).readBigUInt64LE(0)) === pkcs11js.CKK_RSA;
  const secrets = rsa ? [pkcs11js.CKA_PRIVATE_EXPONENT, pkcs11js.CKA_PRIME_1, pkcs11js.CKA_PRIME_2] : [pkcs11js.CKA_VALUE];
  // SoftHSM2 answers ATTRIBUTE_SENSITIVE; tpm2-pkcs11 answers ATTRIBUTE_TYPE_INVALID because
  // it holds no private value at all, only the TPM-wrapped blob. Either way nothing comes back.
  for (const type of secrets) {
    assert.throws(() => p11.C_GetAttributeValue(session, h, [{ type }]), /CKR_ATTRIBUTE_SENSITIVE|CKR_ATTRIBUTE_TYPE_INVALID/, `attribute 0x${type.toString(16)} of ${label} was returned`);
  }
  const flags = p11.C_GetAttributeValue(session, h, [
    { type: pkcs11js.CKA_SENSITIVE },
    { type: pkcs11js.CKA_EXTRACTABLE },
    { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
    { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
  ]);
  assert.deepEqual(flags.map((a) => bool(a.value)), [true, false, true, true], 'sensitive, not extractable, always sensitive, never extractable');
  const flip = (() => {
    try {
      p11.C_SetAttributeValue(session, h, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]);
      return 'accepted';
    } catch (err) {
      assert.match(String(err), /CKR_ATTRIBUTE_READ_ONLY|CKR_ATTRIBUTE_VALUE_INVALID|CKR_ACTION_PROHIBITED/);
      return 'refused';
    }
  })();
  // PKCS#11 forbids CKA_EXTRACTABLE false -> true. SoftHSM2 refuses; tpm2-pkcs11 1.9.0 accepts
  // the write (docs/hal.md), so the wrap attempts below must fail whatever the flag says.
  assert.equal(flip, expectFlagFlip, `CKA_EXTRACTABLE false -> true was ${flip}`);
  const wrappers: Array<{ key: Buffer; mechanism: number }> = [];
  try {
    const aes = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_WRAP, value: true },
    ]);
    wrappers.push({ key: aes, mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD });
  } catch (err) {
    assert.match(String(err), /CKR_MECHANISM_INVALID|CKR_FUNCTION_NOT_SUPPORTED/, String(err));
  }
  p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_LABEL, value: label }]);
  const [pub] = p11.C_FindObjects(session, 1);
  p11.C_FindObjectsFinal(session);
  if (pub) wrappers.push({ key: pub, mechanism: pkcs11js.CKM_RSA_PKCS });
  assert.ok(wrappers.length > 0);
  for (const w of wrappers) {
    assert.throws(
      () => p11.C_WrapKey(session, { mechanism: w.mechanism }, w.key, h, Buffer.alloc(8192)),
      /CKR_KEY_UNEXTRACTABLE|CKR_KEY_NOT_WRAPPABLE|CKR_MECHANISM_INVALID|CKR_FUNCTION_NOT_SUPPORTED|CKR_WRAPPING_KEY_TYPE_INCONSISTENT|CKR_KEY_FUNCTION_NOT_PERMITTED|CKR_WRAPPING_KEY_HANDLE_INVALID/,
    );
  }
  if (wrappers[0]?.mechanism === pkcs11js.CKM_AES_KEY_WRAP_PAD) p11.C_DestroyObject(session, wrappers[0].key);
}
