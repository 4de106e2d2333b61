/**
 * Effect `catch-up` (C1/C2): bring a device that slept through one or more
 * rotations to the fleet's current root in one verified step. The payload
 * carries every missed root key update (D, R) oldest first and a new
 * certificate. Each link is verified from what the device already trusts
 * (device rule 2, never a trust on first use): D_1 against the current
 * root, each R_i against D_i, each D_(i+1) against R_i, the certificate
 * against the last R and the device's own key. Only then does the device
 * trust the last R alone and present only the new certificate.
 */
import type { X509Certificate } from 'node:crypto';
import { checkDistribution, checkLeaf, checkNewRoot } from '../../protocol/cert-checks.ts';
import { ProtocolError } from '../../protocol/errors.ts';
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

/** Verify the chain and the certificate; then replace roots and identity at once. */
export function catchUp({ draft, payload, ownKeys, now }: EffectContext): void {
  const links = payload.chain!;
  // A D left over from an unfinished rotation is superseded: the chain is checked from the current root only.
  let anchor: X509Certificate = parseCertificate(draft.trust.current, 'stored current root');
  links.forEach((link, i) => {
    const where = `link ${i + 1} of ${links.length}`;
    const d = atLink(where, () => parseCertificate(link.distribution, 'D'));
    const r = atLink(where, () => parseCertificate(link.newRoot, 'R'));
    atLink(where, () => checkDistribution(d, anchor, now));
    atLink(where, () => checkNewRoot(r, d, now));
    anchor = r;
  });
  const role = draft.role;
  const leaf = parseCertificate(payload.certificate!, role === 'server' ? 'Sn' : 'Cn');
  const spki = spkiOf(leaf);
  const key = ownKeys.find((k) => k.spki.equals(spki)) ?? ownKeys[0];
  if (!key) throw new ProtocolError('E_LEAF_KEY_MISMATCH', 'the device has no key to match the certificate against');
  atLink('certificate', () => checkLeaf(leaf, anchor, key.spki, role, now));
  draft.trust = { current: toPem(anchor), distribution: null, next: null };
  draft.identity = { active: { cert: toPem(leaf), keyLabel: key.label }, fallback: null };
  if (draft.pendingKey === key.label) draft.pendingKey = null;
}
