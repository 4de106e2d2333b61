/**
 * Effect `catch-up` (C1/C2): bring a device that slept through one or more
 * rotations to the fleet's current root in one verified step. The payload
 * carries every missed root key update (D, R) oldest first and a new
 * certificate. Each link is verified from what the device already trusts
 * (device rule 2, never a trust on first use): D_1 against the current
 * root, each R_i against D_i, each D_(i+1) against R_i, the certificate
 * against the last R and the device's own key. Only then does the device
 * trust the last R alone and present only the new certificate. A device
 * that keeps its issuer root apart (separate roots) gets a second chain
 * for that root (`issuerChain`); either chain may be empty, not both, and
 * the certificate is checked against the last issuer root.
 */
import type { X509Certificate } from 'node:crypto';
import { checkDistribution, checkLeaf, checkNewRoot } from '../../protocol/cert-checks.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import type { ChainLink } from '../../protocol/messages/command.ts';
import { parseCertificate, spkiOf, toPem } from '../../protocol/pem.ts';
import type { EffectContext } from './context.ts';

/** Run a check, naming the link in its error (same code, so programs still match it). */
function atLink<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ProtocolError) throw new ProtocolError(err.code, `catch-up ${where}: ${err.reason}`, { ...err.details, link: where });
    throw err;
  }
}

/** Walk `links` from `anchor` (each D against the root before it, each R against its D); the last R, or `anchor` when there is none. */
function walk(links: readonly ChainLink[], anchor: X509Certificate, now: Date, name: string): X509Certificate {
  links.forEach((link, i) => {
    const where = `${name}link ${i + 1} of ${links.length}`;
    const d = atLink(where, () => parseCertificate(link.distribution, 'D'));
    const r = atLink(where, () => parseCertificate(link.newRoot, 'R'));
    atLink(where, () => checkDistribution(d, anchor, now));
    atLink(where, () => checkNewRoot(r, d, now));
    anchor = r;
  });
  return anchor;
}

/**
 * Verify the chain (and, on a separate-roots device, the issuer chain) and
 * the certificate; then replace roots and identity at once.
 */
export function catchUp({ draft, payload, ownKeys, now }: EffectContext): void {
  const links = payload.chain!;
  const issuerLinks = payload.issuerChain;
  if (issuerLinks !== undefined && !draft.issuer) {
    throw new ProtocolError('E_ROOT_LAYOUT', 'this catch-up carries an issuer chain for a separate-roots device, but this device holds one fleet root');
  }
  if (issuerLinks === undefined && draft.issuer) {
    throw new ProtocolError('E_ROOT_LAYOUT', 'this device keeps its issuer root apart (separate roots); a catch-up without an issuer chain cannot bring it forward');
  }
  if (links.length + (issuerLinks?.length ?? 0) === 0) {
    throw new ProtocolError('E_SCHEMA', 'a catch-up carries no root key update at all; nothing to bring forward');
  }
  // A D left over from an unfinished rotation is superseded: each chain is checked from the current root only.
  const peerRoot = walk(links, parseCertificate(draft.trust.current, 'stored current root'), now, issuerLinks ? 'peer chain ' : '');
  const issuerRoot = draft.issuer ? walk(issuerLinks!, parseCertificate(draft.issuer.current, 'stored issuer root'), now, 'issuer chain ') : peerRoot;
  const role = draft.role;
  const leaf = parseCertificate(payload.certificate!, role === 'server' ? 'Sn' : 'Cn');
  const spki = spkiOf(leaf);
  const key = ownKeys.find((k) => k.spki.equals(spki)) ?? ownKeys[0];
  if (!key) throw new ProtocolError('E_LEAF_KEY_MISMATCH', 'the device has no key to match the certificate against');
  atLink('certificate', () => checkLeaf(leaf, issuerRoot, key.spki, role, now));
  draft.trust = { current: toPem(peerRoot), distribution: null, next: null };
  if (draft.issuer) draft.issuer = { current: toPem(issuerRoot), distribution: null, next: null };
  draft.identity = { active: { cert: toPem(leaf), keyLabel: key.label }, fallback: null };
  if (draft.pendingKey === key.label) draft.pendingKey = null;
}
