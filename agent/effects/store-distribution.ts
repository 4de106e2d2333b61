/**
 * Effect `store-distribution` (P1, P2, and the first part of B1/B2): verify
 * D (NewWithOld) with the current root R0 and trust K1 next to R0. Nothing
 * is removed [0066-0071].
 */
import { checkDistribution } from '../../protocol/cert-checks.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { parseCertificate, toPem } from '../../protocol/pem.ts';
import type { EffectContext } from './context.ts';

/** Verify and add D to the trust store. */
export function storeDistribution({ draft, payload, now }: EffectContext): void {
  const d = parseCertificate(payload.distribution!, 'D');
  const r0 = parseCertificate(draft.trust.current, 'stored R0');
  if (draft.trust.distribution !== null || draft.trust.next !== null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'a distribution root is already stored; finish or abandon that rotation first');
  }
  checkDistribution(d, r0, now);
  draft.trust.distribution = toPem(d);
}
