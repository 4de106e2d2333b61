/**
 * The one stored record that is a device's whole trust state (the dual trust
 * store, its identities, and where it stands in a rotation), and the summary
 * of it that travels in acknowledgements.
 */
import { canonicalHash } from '../protocol/canonical-json.ts';
import { fingerprintPem } from '../protocol/pem.ts';
import type { Ack, DeviceStateSummary } from '../protocol/messages/ack.ts';
import type { Role } from '../protocol/steps.ts';

/** A TLS identity: a certificate and the HAL label of its private key. */
export interface Identity {
  cert: string;
  keyLabel: string;
}

/**
 * Roots the device trusts. During a rotation up to three are held at once:
 * `current` (R0), `distribution` (D = NewWithOld) and `next` (R1). After
 * the old roots are dropped, R1 becomes `current`.
 */
export interface TrustSlots {
  current: string;
  distribution: string | null;
  next: string | null;
  /**
   * OldWithNew (K0 certified by K1), kept after R0 was dropped when the
   * rotation distributed it: not a root, an intermediate that lets peers
   * still presenting K0-signed leaves chain to R1. Absent otherwise (and on
   * every record written before it existed, which hash as before).
   */
  oldWithNew?: string;
}

/** A command result kept to answer redeliveries identically. */
export interface StoredResult {
  seq: number;
  rotationId: string;
  step: string;
  commandHash: string;
  ack: Ack;
}

/** The device's durable state. */
export interface DeviceRecord {
  version: 1;
  deviceId: string;
  role: Role;
  trust: TrustSlots;
  /**
   * Separate-roots fleets only [0144-0145]: the slots of the root that
   * issues this device's own certificate (the client root on a client, the
   * server root on a server), laid out like `trust`. The device verifies its
   * own new certificate with them (device rule 2) and never verifies a peer
   * with them; `trust` then holds the other side's root. Absent (every
   * single-root record, and every record written before separate roots
   * existed): one root signs both sides, and `trust` serves both purposes.
   */
  issuer?: TrustSlots;
  /** Server: `fallback` is always null. Client: `active` is presented first, `fallback` on rejection. */
  identity: { active: Identity; fallback: Identity | null };
  rotation: { id: string; schedule: string; completed: string[] } | null;
  /** HAL label of a re-key in progress: a new key whose CSR went to the manager (absent on old records). */
  pendingKey?: string | null;
  lastSeq: number;
  results: StoredResult[];
}

// Stored certificates were parsed and verified before they were stored; the summary only hashes their DER.
const fp = (pem: string | null | undefined): string | null => (pem ? fingerprintPem(pem) : null);

/** Hash of the parts that decide authentication (roots and identities); a single-root record hashes as before separate roots existed. */
export function trustHash(record: DeviceRecord): string {
  return canonicalHash(record.issuer ? { trust: record.trust, issuer: record.issuer, identity: record.identity } : { trust: record.trust, identity: record.identity });
}

/** True when the device keeps its issuer's root apart from the root it verifies peers with (a separate-roots fleet). */
export function hasSeparateRoots(record: DeviceRecord): boolean {
  return record.issuer !== undefined && record.issuer !== null;
}

/** The slots a device verifies its own new certificates with: its issuer's root, or the one fleet root. */
export function ownRootSlots(record: DeviceRecord): TrustSlots {
  return record.issuer ?? record.trust;
}

const slotPrints = (t: TrustSlots) => ({ current: fp(t.current)!, distribution: fp(t.distribution), next: fp(t.next), ...(t.oldWithNew ? { oldWithNew: fp(t.oldWithNew)! } : {}) });

/** The acknowledgement's view of the record: fingerprints only, no keys. */
export function summarize(record: DeviceRecord): DeviceStateSummary {
  return {
    storeHash: trustHash(record),
    rotationId: record.rotation?.id ?? null,
    completed: [...(record.rotation?.completed ?? [])],
    trust: slotPrints(record.trust),
    ...(record.issuer ? { issuer: slotPrints(record.issuer) } : {}),
    identity: { active: fp(record.identity.active.cert)!, fallback: fp(record.identity.fallback?.cert) },
  };
}

/** The trust store's certificates in the order a TLS stack should load them (the peers' root only; never the issuer slots). */
export function anchorsOf(record: DeviceRecord): string[] {
  // OldWithNew last: it is not self-signed, so TLS stacks use it only to chain a K0-signed leaf up to R1.
  return [record.trust.current, record.trust.distribution, record.trust.next, record.trust.oldWithNew ?? null].filter((p): p is string => p !== null);
}

/** Identities in presentation order: the new one first, then the fallback. */
export function identitiesOf(record: DeviceRecord): Identity[] {
  return record.identity.fallback ? [record.identity.active, record.identity.fallback] : [record.identity.active];
}
