/**
 * Separate-roots effects on the presenting side ([0144-0145]): the root
 * that issues this device's own certificate is rotated in the device's
 * issuer slots, with the same checks as the peer trust store
 * (store-distribution, store-new-root, drop-old-roots): D verified with the
 * issuer root the device holds, R1 with that D, and the old issuer root
 * deleted only once R1 is stored. The issuer slots are never used to verify
 * a peer; they let the device verify its new certificate (device rule 2).
 */
import { checkDistribution, checkNewRoot } from '../../protocol/cert-checks.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { parseCertificate, toPem } from '../../protocol/pem.ts';
import type { TrustSlots } from '../device-record.ts';
import type { EffectContext } from './context.ts';

function issuerSlots({ draft }: EffectContext): TrustSlots {
  if (!draft.issuer) {
    throw new ProtocolError('E_ROOT_LAYOUT', 'this device holds one fleet root, not a separate issuer root; a separate-roots step cannot apply here');
  }
  return draft.issuer;
}

/** Verify the issuer's D with the issuer root and keep it next to it. */
export function storeIssuerDistribution(ctx: EffectContext): void {
  const slots = issuerSlots(ctx);
  const d = parseCertificate(ctx.payload.distribution!, 'issuer D');
  if (slots.distribution !== null || slots.next !== null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'a distribution root of the issuing root is already stored; finish or abandon that rotation first');
  }
  checkDistribution(d, parseCertificate(slots.current, 'stored issuer root'), ctx.now);
  ctx.draft.issuer = { ...slots, distribution: toPem(d) };
}

/** Verify the issuer's R1 with the stored issuer D and keep it. */
export function storeIssuerNewRoot(ctx: EffectContext): void {
  const slots = issuerSlots(ctx);
  const r1 = parseCertificate(ctx.payload.newRoot!, 'issuer R1');
  if (slots.distribution === null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'the new issuer root arrived but no issuer distribution root D is stored to verify it with');
  }
  checkNewRoot(r1, parseCertificate(slots.distribution, 'stored issuer D'), ctx.now);
  ctx.draft.issuer = { ...slots, next: toPem(r1) };
}

/** The verified issuer R1 becomes the issuer root; the old one and D are deleted. */
export function dropOldIssuerRoots(ctx: EffectContext): void {
  const slots = issuerSlots(ctx);
  if (slots.next === null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'cannot delete the old issuer root: the new issuer root is not stored yet');
  }
  ctx.draft.issuer = { current: slots.next, distribution: null, next: null };
}
