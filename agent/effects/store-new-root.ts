/**
 * Effect `store-new-root` (first part of P5/P6, B1/B2): verify R1
 * (NewWithNew) with the key of the stored D and keep it next to R0 and D
 * [0082-0088].
 */
import { checkNewRoot } from '../../protocol/cert-checks.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { parseCertificate, toPem } from '../../protocol/pem.ts';
import type { EffectContext } from './context.ts';

/** Verify and add R1 to the trust store. */
export function storeNewRoot({ draft, payload, now }: EffectContext): void {
  const r1 = parseCertificate(payload.newRoot!, 'R1');
  if (draft.trust.distribution === null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'R1 arrived but no distribution root D is stored to verify it with');
  }
  checkNewRoot(r1, parseCertificate(draft.trust.distribution, 'stored D'), now);
  draft.trust.next = toPem(r1);
}
