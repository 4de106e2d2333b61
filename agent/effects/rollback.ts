/**
 * Rollback effects (X1/X2, Y1/Y2): undo a rotation aborted before any
 * server replaced its certificate, back to exactly the state before it.
 * `rollback-client-cert` makes the kept old client certificate active again
 * and drops Cn; `rollback-roots` forgets D and R1 and keeps R0. Both leave a
 * device that holds nothing of the rotation unchanged, so they are
 * idempotent.
 */
import { issuedBy } from '../../protocol/chain.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { parseCertificate } from '../../protocol/pem.ts';
import type { DeviceRecord } from '../device-record.ts';
import type { EffectContext } from './context.ts';

/** True when the active certificate is signed by the new root key K1 the device holds (D or R1). */
function presentsK1(draft: DeviceRecord): boolean {
  const k1 = [draft.trust.distribution, draft.trust.next].filter((p): p is string => p !== null);
  if (k1.length === 0) return false;
  const active = parseCertificate(draft.identity.active.cert, 'active certificate');
  return k1.some((pem) => issuedBy(active, parseCertificate(pem, 'stored K1 certificate')));
}

/** Present the old client certificate again and drop Cn, if Cn came with this rotation. */
export function rollbackClientCert({ draft }: EffectContext): void {
  const { active, fallback } = draft.identity;
  if (fallback === null || !presentsK1(draft)) return;
  draft.identity = { active: fallback, fallback: null };
  // Cn carried a re-keyed key: that key is still in the HAL and its CSR with the manager, so it is pending again.
  if (active.keyLabel !== fallback.keyLabel) draft.pendingKey = active.keyLabel;
}

/** Forget D and R1; R0 stays the current root (with the OldWithNew an earlier rotation left, if any). */
export function rollbackRoots({ draft }: EffectContext): void {
  if (draft.trust.distribution === null && draft.trust.next === null) return;
  if (presentsK1(draft)) {
    throw new ProtocolError('E_ROLLBACK_TOO_LATE', 'this device presents a certificate signed by the new root key; forgetting that key now would leave it with an identity it cannot chain');
  }
  draft.trust = { current: draft.trust.current, distribution: null, next: null, ...(draft.trust.oldWithNew ? { oldWithNew: draft.trust.oldWithNew } : {}) };
}
