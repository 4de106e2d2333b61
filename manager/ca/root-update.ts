/**
 * Step S of the rotation (PROTOCOL.md): the root CA key update set of RFC
 * 4210 §4.4 / RFC 9810 §4.4. From the current root R0 (OldWithOld, key K0)
 * it makes a new key K1 and three certificates:
 *
 *   R1  NewWithNew  K1 certified by K1 (self-signed)             → `next`
 *   D   NewWithOld  K1 certified by K0, issuer = R0's subject    → `distribution`
 *       OldWithNew  K0 certified by K1, issuer = R1's subject    → `oldWithNew`
 *
 * Validity (RFC 9810 §4.4): R1 starts at `now`, which must lie before R0's
 * notAfter; D starts with R1 and ends at min(R0.notAfter, R1.notAfter);
 * OldWithNew has R0's validity period.
 *
 * Names are copied byte for byte from R0 (and R1), and every certificate's
 * AKI names its signer's SKI. That is what lets chain builders pick the
 * right issuer when R1 keeps R0's DN: D then has subject == issuer without
 * being self-signed, and only the key identifiers tell K0 from K1.
 */
import { readCaCertificate, assertIssuer } from './cert-info.ts';
import { CaError } from './errors.ts';
import { algorithmOf, generateKeyPair, keyIdentifier, spkiOf, type CaKeyAlgorithm } from './keys.ts';
import { toSeconds } from './fields.ts';
import { buildCaCertificate, CROSS_PATH_LENGTH, encodeSubject, ROOT_PATH_LENGTH, type RootMaterial } from './root.ts';

/** Input of a root key update. */
export interface RootUpdateOptions {
  /** The current root R0 and its key K0. */
  readonly old: RootMaterial;
  /** Start of R1 and D; truncated to whole seconds. */
  readonly now: Date;
  /** Lifetime of R1 in days from `now`. */
  readonly lifetimeDays: number;
  /** DN of R1 and D in encoding order; default: R0's subject, byte for byte. */
  readonly subject?: string;
  /** K1's algorithm; default: the same as K0. */
  readonly algorithm?: CaKeyAlgorithm;
}

/** The certificates and key produced by a root key update. */
export interface RootUpdate {
  /** R1 (NewWithNew) and K1. */
  readonly next: RootMaterial;
  /** D (NewWithOld), PEM. */
  readonly distribution: string;
  /** OldWithNew, PEM: lets a holder of R1 alone still verify K0's leaves. */
  readonly oldWithNew: string;
}

const DAY_MS = 86_400_000;

/** Make K1, R1, D and OldWithNew from R0/K0; see the module comment for the rules. */
export async function createRootUpdate(options: RootUpdateOptions): Promise<RootUpdate> {
  const r0 = readCaCertificate(options.old.cert);
  assertIssuer(r0, options.old.key);
  const now = toSeconds(options.now);
  if (now >= r0.notAfter) {
    throw new CaError('E_CA_VALIDITY', `the old root expired at ${r0.notAfter.toISOString()} (now ${now.toISOString()}); devices can no longer verify a distribution root signed by it, so R1 must be provisioned out of band`);
  }
  if (now < r0.notBefore) {
    throw new CaError('E_CA_VALIDITY', `now (${now.toISOString()}) is before the old root's notBefore ${r0.notBefore.toISOString()}; check the manager clock`);
  }
  if (!Number.isFinite(options.lifetimeDays) || options.lifetimeDays <= 0) {
    throw new CaError('E_CA_VALIDITY', `lifetimeDays must be a positive number of days, got ${options.lifetimeDays}`);
  }
  const r1NotAfter = toSeconds(new Date(now.getTime() + options.lifetimeDays * DAY_MS));
  if (r1NotAfter <= now) throw new CaError('E_CA_VALIDITY', `lifetimeDays ${options.lifetimeDays} is shorter than one second`);
  const dNotAfter = r1NotAfter < r0.notAfter ? r1NotAfter : r0.notAfter;

  const subject = options.subject === undefined ? r0.subject : encodeSubject(options.subject);
  const k1 = await generateKeyPair(options.algorithm ?? algorithmOf(options.old.key));
  const spki1 = spkiOf(k1.publicKey);
  const keyId1 = keyIdentifier(spki1);
  if (keyId1.equals(r0.keyId)) throw new Error('internal: new root key identifier collides with the old one');

  const next = await buildCaCertificate({
    subject,
    issuer: subject,
    publicKey: spki1,
    signingKey: k1.privateKey,
    notBefore: now,
    notAfter: r1NotAfter,
    subjectKeyId: keyId1,
    authorityKeyId: keyId1,
    pathLength: ROOT_PATH_LENGTH,
  });
  const distribution = await buildCaCertificate({
    subject,
    issuer: r0.subject,
    publicKey: spki1,
    signingKey: options.old.key,
    notBefore: now,
    notAfter: dNotAfter,
    subjectKeyId: keyId1,
    authorityKeyId: r0.keyId,
    pathLength: CROSS_PATH_LENGTH,
  });
  const oldWithNew = await buildCaCertificate({
    subject: r0.subject,
    issuer: subject,
    publicKey: r0.spki,
    signingKey: k1.privateKey,
    notBefore: r0.notBefore,
    notAfter: r0.notAfter,
    subjectKeyId: r0.keyId,
    authorityKeyId: keyId1,
    pathLength: CROSS_PATH_LENGTH,
  });
  return { next: { cert: next, key: k1.privateKey }, distribution, oldWithNew };
}
