/**
 * Clean-up effects (P5, P6, B2, B3): `drop-old-roots` makes R1 the current
 * root and deletes R0 and D; `drop-old-client-cert` deletes the fallback
 * client certificate. R1 must already be verified and stored (device rule 1).
 */
import { ProtocolError } from '../../protocol/errors.ts';
import type { EffectContext } from './context.ts';

/** Replace R0 and D by the verified R1. */
export function dropOldRoots({ draft }: EffectContext): void {
  if (draft.trust.next === null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'cannot delete the old root: the new root R1 is not stored yet');
  }
  draft.trust = { current: draft.trust.next, distribution: null, next: null };
}

/** Forget the old client certificate kept for fallback. */
export function dropOldClientCert({ draft }: EffectContext): void {
  if (draft.identity.fallback === null) return;
  draft.identity = { active: draft.identity.active, fallback: null };
}
