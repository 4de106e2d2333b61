/**
 * The certificate checks a device makes before it stores anything
 * (PROTOCOL.md, device rule 2, and RFC 9810 §4.4 for the root key update
 * set): D against R0, R1 against D, leaves against K1 and the device's key.
 * Each check throws a ProtocolError with the code the device acknowledges.
 */
import type { X509Certificate } from 'node:crypto';
import { ProtocolError } from './errors.ts';
import { allowsPurpose, profileOf } from './cert-profile.ts';
import { issuedBy, isSelfSigned } from './chain.ts';
import { dn, spkiOf, validity } from './pem.ts';

function requireCa(cert: X509Certificate, what: string): void {
  const p = profileOf(cert);
  if (!p.isCa || !p.keyUsagePresent || !p.canSignCerts) {
    throw new ProtocolError('E_CA_CONSTRAINTS', `${what} must carry basicConstraints CA:true and keyUsage keyCertSign (CA:${p.isCa}, keyCertSign:${p.keyUsagePresent && p.canSignCerts})`);
  }
}

function requireCurrent(cert: X509Certificate, now: Date, what: string): void {
  const v = validity(cert);
  if (now < v.notBefore || now > v.notAfter) {
    throw new ProtocolError('E_VALIDITY', `${what} is valid from ${v.notBefore.toISOString()} to ${v.notAfter.toISOString()}, not at ${now.toISOString()}`);
  }
}

/**
 * Check the distribution root D (NewWithOld) against the current root R0:
 * signed by K0, issuer/AKI naming R0, a CA, valid now, not outliving R0,
 * and for a key other than K0.
 */
export function checkDistribution(d: X509Certificate, r0: X509Certificate, now: Date): void {
  if (!issuedBy(d, r0)) {
    throw new ProtocolError('E_VERIFY_D', `D (subject "${dn(d.subject)}", issuer "${dn(d.issuer)}") is not signed by the trusted root "${dn(r0.subject)}"`);
  }
  if (spkiOf(d).equals(spkiOf(r0))) {
    throw new ProtocolError('E_VERIFY_D', 'D certifies the same key as the current root; it introduces no new root key');
  }
  requireCa(d, 'D');
  requireCurrent(d, now, 'D');
  if (validity(d).notAfter > validity(r0).notAfter) {
    throw new ProtocolError('E_VALIDITY', `D expires ${validity(d).notAfter.toISOString()}, after the old root (${validity(r0).notAfter.toISOString()}); RFC 9810 forbids it`);
  }
}

/**
 * Check the new root R1 (NewWithNew) against a stored D: self-signed by the
 * same key D certifies, same subject, same notBefore, a CA, valid now.
 */
export function checkNewRoot(r1: X509Certificate, d: X509Certificate, now: Date): void {
  if (!spkiOf(r1).equals(spkiOf(d))) {
    throw new ProtocolError('E_VERIFY_R1', 'R1 carries a different public key than the stored D');
  }
  // Same key as D (checked above), so R1's self-signature is the signature under D's key.
  if (!isSelfSigned(r1)) {
    throw new ProtocolError('E_VERIFY_R1', `R1 ("${dn(r1.subject)}") is not self-signed by the key that D certifies`);
  }
  if (r1.subject !== d.subject) {
    throw new ProtocolError('E_VERIFY_R1', `R1 subject "${dn(r1.subject)}" differs from D subject "${dn(d.subject)}"`);
  }
  requireCa(r1, 'R1');
  requireCurrent(r1, now, 'R1');
  if (validity(r1).notBefore.getTime() !== validity(d).notBefore.getTime()) {
    throw new ProtocolError('E_VALIDITY', `R1 notBefore ${validity(r1).notBefore.toISOString()} differs from D notBefore ${validity(d).notBefore.toISOString()} (RFC 9810)`);
  }
}

/**
 * Check OldWithNew (RFC 9810 §4.4: K0 certified by K1) against the stored
 * R0 and R1: signed by K1 and issued in R1's name, certifying exactly R0's
 * key and subject, a CA, valid now and not outliving R0. Kept after R0 is
 * dropped, it lets a device that trusts only R1 verify a peer still
 * presenting a leaf signed by K0.
 */
export function checkOldWithNew(own: X509Certificate, r0: X509Certificate, r1: X509Certificate, now: Date): void {
  if (!issuedBy(own, r1)) {
    throw new ProtocolError('E_VERIFY_OLD_WITH_NEW', `OldWithNew (issuer "${dn(own.issuer)}") is not signed by the new root "${dn(r1.subject)}"`);
  }
  if (!spkiOf(own).equals(spkiOf(r0))) {
    throw new ProtocolError('E_VERIFY_OLD_WITH_NEW', 'OldWithNew certifies another key than the old root this device holds');
  }
  if (own.subject !== r0.subject) {
    throw new ProtocolError('E_VERIFY_OLD_WITH_NEW', `OldWithNew subject "${dn(own.subject)}" differs from the old root's "${dn(r0.subject)}"`);
  }
  requireCa(own, 'OldWithNew');
  requireCurrent(own, now, 'OldWithNew');
  if (validity(own).notAfter > validity(r0).notAfter) {
    throw new ProtocolError('E_VALIDITY', `OldWithNew expires ${validity(own).notAfter.toISOString()}, after the old root (${validity(r0).notAfter.toISOString()}); RFC 9810 forbids it`);
  }
}

/**
 * Check a new device certificate (Cn or Sn): issued and signed by K1
 * (`k1` is D or R1), an end-entity for the device's role, valid now, and
 * for exactly the device's own public key.
 */
export function checkLeaf(leaf: X509Certificate, k1: X509Certificate, ownSpki: Buffer, role: 'server' | 'client', now: Date): void {
  if (!issuedBy(leaf, k1)) {
    throw new ProtocolError('E_VERIFY_LEAF', `certificate "${dn(leaf.subject)}" is not issued by the new root key ("${dn(k1.subject)}")`);
  }
  if (profileOf(leaf).isCa) {
    throw new ProtocolError('E_VERIFY_LEAF', 'a device certificate must not be a CA');
  }
  if (!allowsPurpose(leaf, role)) {
    throw new ProtocolError('E_VERIFY_LEAF', `certificate lacks extendedKeyUsage ${role}Auth`);
  }
  requireCurrent(leaf, now, 'device certificate');
  if (!spkiOf(leaf).equals(ownSpki)) {
    throw new ProtocolError('E_LEAF_KEY_MISMATCH', `certificate "${dn(leaf.subject)}" is for another key than this device's own`);
  }
}
