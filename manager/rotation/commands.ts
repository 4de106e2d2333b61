/**
 * Builds the command for one step of one device from the rotation's stored
 * material. Deterministic for a given sequence number, so a resend after a
 * crash carries the same content.
 */
import { MAX_CHAIN_LINKS, optionalPayloadFields, payloadFields, type ChainLink, type Command, type StepPayload } from '../../protocol/messages/command.ts';
import { CATCH_UP, type Role, type Schedule } from '../../protocol/steps.ts';
import { allowsPurpose } from '../../protocol/cert-profile.ts';
import { parseCertificate } from '../../protocol/pem.ts';
import type { RotationRow, StepRow } from '../fleet/fleet-db.ts';

/** The command for `row`, carrying exactly the certificates its step needs (a rollback step: none, `payload: {}`). */
export function buildCommand(schedule: Schedule, rotation: RotationRow, row: StepRow, seq: number, leaf: string | undefined, now: Date, oldWithNew?: string): Command {
  const payload: StepPayload = {};
  // OldWithNew rides with the old-root clean-up when the rotation distributes it (orchestrator start option).
  if (oldWithNew !== undefined && optionalPayloadFields(schedule, row.step).includes('oldWithNew')) payload.oldWithNew = oldWithNew;
  for (const field of payloadFields(schedule, row.step)) {
    if (field === 'distribution') payload.distribution = rotation.distribution;
    else if (field === 'newRoot') payload.newRoot = rotation.newRoot;
    else if (field === 'chain') throw new Error(`step ${row.step} of ${schedule.name} carries a root chain; build it with buildCatchUpCommand`);
    else if (leaf === undefined) throw new Error(`rotation ${rotation.id} has no new certificate for ${row.deviceId}`);
    else payload.certificate = leaf;
  }
  return {
    v: 1, kind: 'command', deviceId: row.deviceId, rotationId: rotation.id, schedule: schedule.name,
    seq, step: row.step, issuedAt: now.toISOString(), payload,
  };
}

/**
 * The catch-up command for a device that missed rotations: C1 for a server,
 * C2 for a client, carrying the missed root key updates (D, R) oldest first
 * and the device's new certificate under the last R. The step follows from
 * `role`, or, when it is omitted, from the certificate's extendedKeyUsage
 * (serverAuth or clientAuth, exactly one). A separate-roots device also
 * gets `issuerChain`, the missed updates of the root that issues its
 * certificate; then either chain may be empty, not both.
 */
export function buildCatchUpCommand(deviceId: string, rotationId: string, seq: number, chain: readonly ChainLink[], certificate: string, now: Date, role?: Role, issuerChain?: readonly ChainLink[]): Command {
  const lengths = [chain.length, issuerChain?.length ?? 0];
  if (lengths.some((n) => n > MAX_CHAIN_LINKS) || (issuerChain === undefined ? chain.length < 1 : lengths[0]! + lengths[1]! < 1)) {
    throw new Error(`a catch-up chain has 1 to ${MAX_CHAIN_LINKS} links (a separate-roots device: up to ${MAX_CHAIN_LINKS} in each of its two chains, at least one in all); ${deviceId} would need ${lengths.join(' and ')}`);
  }
  const leaf = parseCertificate(certificate, `new certificate of ${deviceId}`);
  const roles = (['server', 'client'] as const).filter((r) => allowsPurpose(leaf, r));
  const as = role ?? (roles.length === 1 ? roles[0]! : undefined);
  if (!as) throw new Error(`the new certificate of ${deviceId} allows ${roles.join(' and ')}; pass the device's role`);
  if (!roles.includes(as)) throw new Error(`the new certificate of ${deviceId} lacks ${as}Auth`);
  const step = CATCH_UP.steps.find((s) => s.role === as)!.id;
  return {
    v: 1, kind: 'command', deviceId, rotationId, schedule: CATCH_UP.name, seq, step, issuedAt: now.toISOString(),
    payload: {
      chain: chain.map((l) => ({ distribution: l.distribution, newRoot: l.newRoot })),
      ...(issuerChain ? { issuerChain: issuerChain.map((l) => ({ distribution: l.distribution, newRoot: l.newRoot })) } : {}),
      certificate,
    },
  };
}
