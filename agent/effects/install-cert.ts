/**
 * Effects `install-client-cert` (P3) and `install-server-cert` (P4): verify
 * the new leaf with K1 (from D or R1; in a separate-roots fleet, of the
 * device's issuer slots) and against the device's own key. A
 * client keeps its old certificate as fallback and presents the new one
 * first [0072-0076]; a server holds exactly one certificate and replaces it
 * [0077-0081].
 */
import type { X509Certificate } from 'node:crypto';
import { checkLeaf } from '../../protocol/cert-checks.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { parseCertificate, spkiOf, toPem } from '../../protocol/pem.ts';
import type { EffectContext } from './context.ts';
import { ownRootSlots } from '../device-record.ts';

function verifyNewLeaf(ctx: EffectContext, role: 'server' | 'client'): { leaf: X509Certificate; keyLabel: string } {
  const { draft, payload, ownKeys, now } = ctx;
  // The root that issues this device's certificate: its own issuer slots in a separate-roots fleet, else the one root.
  const own = ownRootSlots(draft);
  const k1Pem = own.next ?? own.distribution;
  if (k1Pem === null) {
    throw new ProtocolError('E_OUT_OF_ORDER', 'a new device certificate arrived before the device trusts the new root key (needs D first)');
  }
  const leaf = parseCertificate(payload.certificate!, role === 'server' ? 'Sn' : 'Cn');
  const spki = spkiOf(leaf);
  const key = ownKeys.find((k) => k.spki.equals(spki)) ?? ownKeys[0];
  if (!key) throw new ProtocolError('E_LEAF_KEY_MISMATCH', 'the device has no key to match the certificate against');
  checkLeaf(leaf, parseCertificate(k1Pem, 'stored K1 certificate'), key.spki, role, now);
  if (draft.pendingKey === key.label) draft.pendingKey = null;
  return { leaf, keyLabel: key.label };
}

/** Install Cn; the previous certificate becomes the fallback. */
export function installClientCert(ctx: EffectContext): void {
  const { leaf, keyLabel } = verifyNewLeaf(ctx, 'client');
  const { draft } = ctx;
  draft.identity = { active: { cert: toPem(leaf), keyLabel }, fallback: draft.identity.active };
}

/** Replace the one server certificate with Sn. */
export function installServerCert(ctx: EffectContext): void {
  const { leaf, keyLabel } = verifyNewLeaf(ctx, 'server');
  ctx.draft.identity = { active: { cert: toPem(leaf), keyLabel }, fallback: null };
}
