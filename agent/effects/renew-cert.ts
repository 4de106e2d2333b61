/**
 * Effect `renew-cert` (RS/RC of the `renew` schedule): replace the device's
 * certificate by a renewed one under the root it trusts now. No root
 * changes, so the new leaf is checked against the current root only (never
 * against a D or R1 of an unfinished rotation), for the device's own key and
 * role (device rule 2), and it must expire later than the active one (a
 * renewal never shortens or replays a device's validity). A device with
 * separate client and server roots checks it against its issuer root, the
 * one that signs its own certificate. Then the new
 * certificate becomes the only one: a server replaces its one certificate,
 * a client drops the old one (every peer trusts the root of both, so no
 * fallback is needed). Redeliveries are answered by the dispatcher from the
 * stored result.
 */
import { checkLeaf } from '../../protocol/cert-checks.ts';
import { issuedBy } from '../../protocol/chain.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { dn, parseCertificate, spkiOf, toPem, validity } from '../../protocol/pem.ts';
import { hasSeparateRoots, ownRootSlots } from '../device-record.ts';
import type { EffectContext } from './context.ts';

/** Verify the renewed certificate and make it the device's only identity. */
export function renewCert({ draft, payload, ownKeys, now }: EffectContext): void {
  for (const slots of [draft.trust, ...(draft.issuer ? [draft.issuer] : [])]) {
    if (slots.distribution !== null || slots.next !== null) {
      throw new ProtocolError('E_OUT_OF_ORDER', 'a root rotation is part-way on this device (a new root key is stored next to the current root); finish that rotation before renewing the certificate');
    }
  }
  const role = draft.role;
  const leaf = parseCertificate(payload.certificate!, 'renewed certificate');
  const separate = hasSeparateRoots(draft);
  const root = parseCertificate(ownRootSlots(draft).current, separate ? 'stored issuer root' : 'stored current root');
  if (!issuedBy(leaf, root)) {
    throw new ProtocolError('E_VERIFY_LEAF', `renewed certificate "${dn(leaf.subject)}" (issuer "${dn(leaf.issuer)}") is not issued by the root ${separate ? 'that issues this device\'s certificates' : 'this device trusts now'} ("${dn(root.subject)}"); a renewal keeps the current root`);
  }
  const spki = spkiOf(leaf);
  const key = ownKeys.find((k) => k.spki.equals(spki)) ?? ownKeys[0];
  if (!key) throw new ProtocolError('E_LEAF_KEY_MISMATCH', 'the device has no key to match the renewed certificate against');
  checkLeaf(leaf, root, key.spki, role, now);
  const active = validity(parseCertificate(draft.identity.active.cert, 'active certificate'));
  const renewed = validity(leaf);
  if (renewed.notAfter.getTime() <= active.notAfter.getTime()) {
    throw new ProtocolError('E_VALIDITY', `renewed certificate expires ${renewed.notAfter.toISOString()}, not later than the active one (${active.notAfter.toISOString()}); a renewal must extend the device's validity`);
  }
  draft.identity = { active: { cert: toPem(leaf), keyLabel: key.label }, fallback: null };
  if (draft.pendingKey === key.label) draft.pendingKey = null;
}
