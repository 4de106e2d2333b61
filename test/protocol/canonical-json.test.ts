import { strict as assert } from 'node:assert';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { canonicalJson } from '../../protocol/canonical-json.ts';
import { ackKey } from '../../protocol/ack-signature.ts';

/** The definition the one-pass writer must match byte for byte: JSON.stringify of a key-sorted deep copy. */
function reference(value: unknown): string {
  const sortDeep = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortDeep);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) {
        const x = (v as Record<string, unknown>)[key];
        if (x !== undefined) out[key] = sortDeep(x);
      }
      return out;
    }
    return v;
  };
  return JSON.stringify(sortDeep(value));
}

/** Deterministic pseudo-random JSON-ish values (mulberry32), including what JSON drops or nulls. */
function generator(seed: number) {
  let a = seed;
  const rnd = () => { a |= 0; a = (a + 0x6d2b79f5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const strings = ['', 'a', '4294967295', '4294967294', '007', '0', 'ü', '"quoted"\\', '\n\t\u0000\u2028', '😀', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 'Z', 'aa', '10', '2'];
  const scalars = [null, true, false, 0, -0, 1, -1.5, 1e21, 1e-7, Number.NaN, Infinity, undefined, () => 1];
  const value = (depth: number): unknown => {
    const r = rnd();
    if (depth > 3 || r < 0.35) return rnd() < 0.5 ? strings[Math.floor(rnd() * strings.length)] : scalars[Math.floor(rnd() * scalars.length)];
    if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 5); i > 0; i--) o[strings[Math.floor(rnd() * strings.length)]!] = value(depth + 1);
    return o;
  };
  return value;
}

describe('protocol/canonical-json.ts', () => {
  it('writes exactly the bytes of JSON.stringify over a key-sorted deep copy (2,000 generated values)', () => {
    const value = generator(42);
    for (let i = 0; i < 2_000; i++) {
      const v = { v: value(0), w: [value(1)] };
      assert.equal(canonicalJson(v), reference(v), `value #${i}`);
    }
  });

  it('sorts keys at every depth and drops undefined members', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [3, undefined], c: undefined } }), '{"a":{"d":[3,null]},"b":1}');
    assert.throws(() => canonicalJson({ n: 1n }), TypeError);
  });
});

describe('protocol/ack-signature.ts key import', () => {
  it('a P-256 SPKI imports to the same public key as through DER; an off-curve point is refused', () => {
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const viaDer = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const k = ackKey(spki);
    assert.equal(k.alg, 'ES256');
    assert.ok(k.key.equals(viaDer));
    const bad = Buffer.from(spki);
    bad[90] = bad[90]! ^ 1;
    assert.throws(() => ackKey(bad));
  });

  it('an RSA SPKI takes the DER path', () => {
    const spki = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(ackKey(spki).alg, 'RS256');
  });
});
