/**
 * Which algorithm a rotation's new root gets, and whether every device can
 * verify it. A rotation keeps the active root's algorithm unless the
 * operator chooses another; devices may declare at enrolment which
 * signature algorithms they can verify ("trustroll enroll --verifies RSA"),
 * and a root no declared device can verify is refused before anything is
 * made or sent. Moving between RSA and ECDSA is allowed but warned about.
 */
import { X509Certificate } from 'node:crypto';
import { encodeSubject } from '../ca/root.ts';
import { algorithmOf, CA_KEY_ALGORITHMS, familyOf, type CaKeyAlgorithm } from '../ca/keys.ts';
import { isCaError } from '../ca/errors.ts';
import type { NewRootChoice } from './authority.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb } from '../fleet/fleet-db.ts';

/** What a device may declare it verifies: a family or one exact algorithm. */
export const VERIFY_NAMES: readonly string[] = ['RSA', 'ECDSA', ...CA_KEY_ALGORITHMS];

/**
 * Parse a `--verifies` list ("RSA,ECDSA", "RSA", "RSA,P-256"); E_BAD_REQUEST
 * naming the unknown entry. Returns the names upper-cased and de-duplicated.
 */
export function parseVerifies(text: string): string[] {
  const names = [...new Set(text.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean))];
  if (names.length === 0) throw new ManagerError('E_BAD_REQUEST', `--verifies is empty; give a comma-separated list of ${VERIFY_NAMES.join(', ')}`);
  for (const n of names) {
    if (!VERIFY_NAMES.includes(n)) throw new ManagerError('E_BAD_REQUEST', `--verifies entry ${JSON.stringify(n)} is not one of ${VERIFY_NAMES.join(', ')}`);
  }
  return names;
}

/** True if a device that declared `verifies` can verify signatures made with `algorithm`. */
export function canVerify(verifies: readonly string[], algorithm: CaKeyAlgorithm): boolean {
  return verifies.includes(familyOf(algorithm)) || verifies.includes(algorithm);
}

/** The algorithm of a root certificate's key (PEM). */
export function rootAlgorithm(certPem: string): CaKeyAlgorithm {
  return algorithmOf(new X509Certificate(certPem).publicKey);
}

/** The decision for one rotation's new root. */
export interface NewRootPlan {
  readonly from: CaKeyAlgorithm;
  readonly to: CaKeyAlgorithm;
  /** Devices that declared they cannot verify `to`, with what they declared. */
  readonly unable: readonly { id: string; verifies: readonly string[] }[];
  /** Things the operator must know (a change of signature family). */
  readonly warnings: readonly string[];
}

/**
 * Decide the new root's algorithm from the operator's choice and the active
 * root, check a chosen subject, and list the devices that declared they
 * cannot verify it. Throws E_BAD_REQUEST for an unknown algorithm or an
 * unusable subject; does not throw for `unable` (see assertVerifiable).
 */
export function planNewRoot(db: FleetDb, activeRootPem: string, choice: NewRootChoice = {}): NewRootPlan {
  if (choice.algorithm !== undefined && !CA_KEY_ALGORITHMS.includes(choice.algorithm)) {
    throw new ManagerError('E_BAD_REQUEST', `algorithm ${JSON.stringify(choice.algorithm)} is not one of ${CA_KEY_ALGORITHMS.join(', ')}`);
  }
  if (choice.subject !== undefined) {
    try {
      encodeSubject(choice.subject);
    } catch (err) {
      if (isCaError(err)) throw new ManagerError('E_BAD_REQUEST', err.message);
      throw err;
    }
  }
  const from = rootAlgorithm(activeRootPem);
  const to = choice.algorithm ?? from;
  const declared = db.deviceVerifies();
  const unable = [...declared].filter(([, v]) => !canVerify(v, to)).map(([id, verifies]) => ({ id, verifies }));
  const warnings: string[] = [];
  if (familyOf(from) !== familyOf(to)) {
    const undeclared = db.devices().filter((d) => !declared.has(d.id)).map((d) => d.id);
    warnings.push(`the fleet root moves from ${from} to ${to} (${familyOf(from)} to ${familyOf(to)}): every device must verify ${familyOf(to)} signatures after its last step. `
      + (undeclared.length ? `${undeclared.length} device(s) declared no algorithms and are assumed to verify both (${list(undeclared)}); declare devices that verify only RSA ("trustroll verifies --id <id> --set RSA", or "trustroll enroll ... --verifies RSA") so such a rotation is refused for them` : 'every device declared it can verify it'));
  }
  return { from, to, unable, warnings };
}

/** E_ALGORITHM_UNVERIFIABLE naming the devices of `plan.unable` and what to do; nothing if there are none. */
export function assertVerifiable(plan: NewRootPlan): void {
  if (plan.unable.length === 0) return;
  const who = list(plan.unable.map((u) => `${u.id} (verifies ${u.verifies.join(',')})`));
  throw new ManagerError('E_ALGORITHM_UNVERIFIABLE', `a ${plan.to} root cannot be verified by ${plan.unable.length} device(s) that declared so at enrolment: ${who}; after their last step they could no longer verify their peers. Nothing was started. Rotate with --algorithm ${plan.from} (or without --algorithm: a rotation keeps the fleet's ${plan.from}), or update or replace those devices first`);
}

function list(ids: readonly string[]): string {
  return ids.length > 10 ? `${ids.slice(0, 10).join(', ')} and ${ids.length - 10} more` : ids.join(', ');
}
