/**
 * Clean-up effects (P5, P6, B2, B3): `drop-old-roots` makes R1 the current
 * root and deletes R0 and D; `drop-old-client-cert` deletes the fallback
 * client certificate. R1 must already be verified and stored (device rule 1).
 */
import { checkOldWithNew } from '../../protocol/cert-checks.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { parseCertificate, toPem } from '../../protocol/pem.ts';
import type { EffectContext } from './context.ts';

/**
 * Replace R0 and D by the verified R1. With OldWithNew in the payload, it
 * is verified against R0 and R1 first and kept (replacing any earlier
 * rotation's), so peers that have not switched yet still chain to R1.
 */
export function dropOldRoots({ draft, payload, now }: EffectContext): void {
  if (draft.trust.next === null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'cannot delete the old root: the new root R1 is not stored yet');
  }
  let oldWithNew: string | undefined;
  if (payload.oldWithNew !== undefined) {
    const own = parseCertificate(payload.oldWithNew, 'OldWithNew');
    checkOldWithNew(own, parseCertificate(draft.trust.current, 'stored R0'), parseCertificate(draft.trust.next, 'stored R1'), now);
    oldWithNew = toPem(own);
  }
  draft.trust = { current: draft.trust.next, distribution: null, next: null, ...(oldWithNew ? { oldWithNew } : {}) };
}

/** Forget the old client certificate kept for fallback. */
export function dropOldClientCert({ draft }: EffectContext): void {
  if (draft.identity.fallback === null) return;
  draft.identity = { active: draft.identity.active, fallback: null };
}
