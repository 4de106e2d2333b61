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

/** Hash of the parts that decide authentication (roots and identities). */
export function trustHash(record: DeviceRecord): string {
  return canonicalHash({ trust: record.trust, identity: record.identity });
}

/** The acknowledgement's view of the record: fingerprints only, no keys. */
export function summarize(record: DeviceRecord): DeviceStateSummary {
  return {
    storeHash: trustHash(record),
    rotationId: record.rotation?.id ?? null,
    completed: [...(record.rotation?.completed ?? [])],
    trust: {
      current: fp(record.trust.current)!,
      distribution: fp(record.trust.distribution),
      next: fp(record.trust.next),
    },
    identity: { active: fp(record.identity.active.cert)!, fallback: fp(record.identity.fallback?.cert) },
  };
}

/** The trust store's certificates in the order a TLS stack should load them. */
export function anchorsOf(record: DeviceRecord): string[] {
  return [record.trust.current, record.trust.distribution, record.trust.next].filter((p): p is string => p !== null);
}

/** Identities in presentation order: the new one first, then the fallback. */
export function identitiesOf(record: DeviceRecord): Identity[] {
  return record.identity.fallback ? [record.identity.active, record.identity.fallback] : [record.identity.active];
}
