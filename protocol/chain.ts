/**
 * Path validation the way a TLS peer does it (OpenSSL's default: the path
 * must end at a self-signed certificate held in the trust store), with
 * node:crypto doing the signatures. Used to decide, for any trust store and
 * presented certificate, whether an mTLS handshake would authenticate.
 */
import type { X509Certificate } from 'node:crypto';
import { allowsPurpose, profileOf } from './cert-profile.ts';
import { validity } from './pem.ts';

/** Outcome of a path validation. */
export type ChainResult =
  | { readonly ok: true; readonly path: readonly X509Certificate[] }
  | { readonly ok: false; readonly reason: string };

const MAX_DEPTH = 4;

function within(cert: X509Certificate, now: Date): boolean {
  const v = validity(cert);
  return v.notBefore.getTime() <= now.getTime() && now.getTime() <= v.notAfter.getTime();
}

const verdicts = new WeakMap<X509Certificate, WeakMap<X509Certificate, boolean>>();

/**
 * True if `issuer` names, identifies and signed `cert`. Results are
 * memoized per pair of certificate objects (the same bytes give the same
 * answer), so the roots every step checks are verified once.
 */
export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  let byIssuer = verdicts.get(cert);
  const known = byIssuer?.get(issuer);
  if (known !== undefined) return known;
  const ok = cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  if (!byIssuer) verdicts.set(cert, (byIssuer = new WeakMap()));
  byIssuer.set(issuer, ok);
  return ok;
}

/** True if the certificate is self-issued and its signature verifies under its own key. */
export function isSelfSigned(cert: X509Certificate): boolean {
  return issuedBy(cert, cert);
}

/**
 * Validate `leaf` for `purpose` against the trust store `anchors` at `now`.
 * Intermediates come only from the store (as on the devices, which hold D
 * there); the path must end at a self-signed anchor.
 */
export function verifyChain(leaf: X509Certificate, anchors: readonly X509Certificate[], now: Date, purpose: 'server' | 'client'): ChainResult {
  if (!within(leaf, now)) return { ok: false, reason: 'leaf outside its validity period' };
  if (!allowsPurpose(leaf, purpose)) return { ok: false, reason: `leaf not allowed for ${purpose}Auth` };
  const search = (cert: X509Certificate, path: X509Certificate[]): ChainResult => {
    if (path.length > MAX_DEPTH) return { ok: false, reason: 'path too long' };
    let last = 'no issuer in the trust store';
    for (const cand of anchors) {
      if (path.includes(cand) || !issuedBy(cert, cand)) continue;
      const p = profileOf(cand);
      if (!p.isCa || !p.canSignCerts) { last = 'issuer is not a CA with keyCertSign'; continue; }
      if (!within(cand, now)) { last = 'issuer outside its validity period'; continue; }
      const next = [...path, cand];
      if (isSelfSigned(cand)) return { ok: true, path: next };
      const deeper = search(cand, next);
      if (deeper.ok) return deeper;
      last = deeper.reason;
    }
    return { ok: false, reason: last };
  };
  return search(leaf, [leaf]);
}
