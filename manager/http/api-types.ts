/**
 * The manager's HTTP API as types: the contract between the service
 * (manager/http/routes-*.ts), the dashboard (manager/dashboard/) and
 * scripts. Every body is JSON; every error is `ApiError` with a stable code.
 * The audit, broker and scheduler views are in api-types-ops.ts and
 * re-exported here, so this module is the whole contract.
 *
 *   GET  /api/me                               Me
 *   GET  /api/fleet?offset&limit&q&role&presence&status&sort   FleetPage
 *   GET  /api/devices/:id                      DeviceDetail
 *   POST /api/devices/:id/exclude {reason}     FleetDevice          (admin)
 *   GET  /api/rotations                        { rotations: RotationSummary[] }
 *   GET  /api/rotations/current                RotationDetail of the latest rotation, open or not (404 E_ROTATION_UNKNOWN when none)
 *   GET  /api/rotations/:id                    RotationDetail
 *   GET  /api/rotations/:id/timeline           Timeline
 *   POST /api/rotations {schedule, excludeOfflineAfterS?, algorithm?, subject?}  RotationSummary (+ algorithm, warnings), 201 (admin)
 *   POST /api/rotations/:id/pause|resume|abort RotationSummary      (admin)
 *   GET  /api/schedules                        { schedules: ScheduleView[] }
 *   GET  /api/schedule                         SchedulerView (scheduled rotation and renewal)
 *   POST /api/renewals {deviceIds | expiringWithinS, excludeOfflineAfterS?}  RotationSummary, 201 (admin; renew under the active root)
 *   GET  /api/audit?after|before&limit&rotation&order   AuditPage (order asc with after, desc with before)
 *   GET  /api/broker                           BrokerView
 *   GET  /api/certificates                     CertificatesView
 *   GET  /api/events                           Server-Sent Events (LiveEvent)
 *   GET  /metrics                              Prometheus text format
 */
import type { RootSide } from '../../protocol/steps.ts';
import type { OperatorRole } from '../pki/operator-pki.ts';
import type { AuditEntry, BrokerSample } from './api-types-ops.ts';

export type { AuditEntry, AuditPage, BrokerSample, BrokerView, SchedulerDecisionView, SchedulerView } from './api-types-ops.ts';

/** mTLS role of a device. */
export type Role = 'server' | 'client';

/** Operator roles: `read` sees everything, `admin` may also act (the operator PKI's word, pki/operator-pki.ts). */
export type { OperatorRole };

/** Every error response: `{ error: { code, message } }` with 400/401/403/404/409/500; `message` does not repeat the code. */
export interface ApiError {
  error: { code: string; message: string };
}

/** Who the request is authenticated as. */
export interface Me {
  name: string;
  role: OperatorRole;
  via: 'certificate' | 'token';
}

/** One root a device trusts, from its last state message. */
export interface TrustSlot {
  slot: 'current' | 'distribution' | 'new';
  /** SHA-256 of the certificate's DER, hex. */
  sha256: string;
  /** What the manager knows it to be: `R0`, `D`, `R1` of the open/last rotation, or `unknown`. */
  label: 'R0' | 'D' | 'R1' | 'unknown';
}

/** Where a device stands in the current (or last) rotation. */
export type DeviceStepStatus = 'pending' | 'sent' | 'acked' | 'failed' | 'excluded' | 'done';

/** One device line of the fleet view. */
export interface FleetDevice {
  id: string;
  role: Role;
  /** null: the manager has never seen a state message from it. */
  online: boolean | null;
  /** When `online` last changed (ISO). */
  since: string | null;
  /** The last state message's time (ISO). */
  lastSeen: string | null;
  trusts: TrustSlot[];
  certNotAfter: string | null;
  certDaysLeft: number | null;
  rotationId: string | null;
  /** The device's current step in that rotation (its next unacknowledged step, or its last when done). */
  step: string | null;
  stepStatus: DeviceStepStatus | null;
  attempts: number;
  lastAckAt: string | null;
  lastError: { code: string; message: string } | null;
  excluded: boolean;
  /** Handshake counters the agent reports in its state message (`failed`: trust failures; `unreachable`: peer not answering, null from agents before it). */
  tls: { attempts: number; ok: number; failed: number; unreachable: number | null; fallbacks: number } | null;
  /** The relay that carries its commands (a peer over mutual TLS), or null when it reaches the broker itself. */
  via: string | null;
  /** The devices it relays for. */
  relaysFor: string[];
  /**
   * The optional step fields its agent last reported it applies (e.g.
   * `oldWithNew`); [] for an agent too old to say; null when it has not
   * reported since enrolment.
   */
  accepts: string[] | null;
}

/** One page of the fleet, with totals over the whole fleet. */
export interface FleetPage {
  /** Devices matching the filter. */
  total: number;
  offset: number;
  limit: number;
  counts: { devices: number; online: number; offline: number; unknown: number; servers: number; clients: number; excluded: number };
  devices: FleetDevice[];
}

/** Query of GET /api/fleet (all optional). */
export interface FleetQuery {
  offset?: number;
  /** 0..500, default 100 (0: counts only). */
  limit?: number;
  /** Substring of the device id (case-insensitive). */
  q?: string;
  role?: Role;
  presence?: 'online' | 'offline' | 'unknown';
  status?: DeviceStepStatus;
  sort?: 'id' | 'role' | 'since' | 'step' | 'certNotAfter';
}

/** One step row of a device. */
export interface StepView {
  step: string;
  status: 'pending' | 'sent' | 'acked' | 'failed' | 'excluded';
  seq: number | null;
  attempts: number;
  sentAt: string | null;
  ackedAt: string | null;
  error: { code: string; message: string } | null;
}

/** A certificate as the dashboard shows it. */
export interface CertInfo {
  subject: string;
  issuer: string;
  sha256: string;
  notBefore: string;
  notAfter: string;
}

/** GET /api/devices/:id */
export interface DeviceDetail {
  device: FleetDevice;
  certificate: CertInfo;
  steps: StepView[];
  /** Devices the current step waits for. */
  waitingFor: Blocker[];
}

/** Rotation lifecycle as stored. */
export type RotationStatusName = 'running' | 'paused' | 'complete' | 'failed' | 'aborted' | 'rolling-back' | 'rolled-back';

/** A rotation in lists and live events. */
export interface RotationSummary {
  id: string;
  schedule: string;
  status: RotationStatusName;
  createdAt: string;
  updatedAt: string;
  error: string | null;
  /** The error's stable code: E_ROLLBACK_IMPOSSIBLE for an abort that could no longer roll back (it stopped where it was), E_ROTATION_FAILED for one a failing device stopped; null without an error. */
  errorCode: string | null;
  acked: number;
  excluded: number;
  total: number;
  /** The schedule of the phase shown: the forward schedule, or its rollback while rolling back. */
  phaseSchedule: string;
  /** Whether an abort now returns every device to its old state (no server has been sent its new certificate yet); else why not. */
  rollback: { possible: boolean; reason: string | null };
  /** Only in the answer to POST /api/rotations: what the operator must know about the new root (e.g. it moves from RSA to ECDSA). */
  warnings?: string[];
  /** Only in the answer to POST /api/rotations: the new root's key algorithm. */
  algorithm?: string;
}

/** Per-step progress bar. */
export interface StepProgress {
  step: string;
  role: Role;
  doc: string;
  total: number;
  pending: number;
  sent: number;
  acked: number;
  failed: number;
  excluded: number;
}

/** A device-step that holds others up. */
export interface Blocker {
  deviceId: string;
  step: string;
  role: Role;
  online: boolean | null;
  since: string | null;
  status: StepView['status'];
  attempts: number;
  lastError: { code: string; message: string } | null;
}

/**
 * "P4 of printer-17 waits for P2 of console-3, offline since 10:42": a
 * pending step of a device and what it waits for (first `limit` blockers,
 * `more` not listed).
 */
export interface Wait {
  deviceId: string;
  role: Role;
  step: string;
  waitingFor: Blocker[];
  more: number;
}

/** GET /api/rotations/:id */
export interface RotationDetail extends RotationSummary {
  steps: StepProgress[];
  /** Blocking device-steps, most-blocking first (at most 100). */
  blockers: (Blocker & { blocks: number })[];
  /** Pending device-steps and who they wait for (at most 200). */
  waits: Wait[];
  waitsTotal: number;
  material: { distribution: CertInfo; newRoot: CertInfo };
}

/** Acknowledgements over time, per step: counts[i] acks in [start + i*bucketMs, start + (i+1)*bucketMs). */
export interface Timeline {
  rotationId: string;
  start: string;
  bucketMs: number;
  series: { step: string; counts: number[] }[];
}

/** A schedule as the confirmation dialog shows it. */
export interface ScheduleView {
  name: string;
  /** The root it rotates, in a fleet with separate client and server roots. */
  root?: RootSide;
  steps: { id: string; role: Role; doc: string; after: string[] }[];
  sequence: { server: string[]; client: string[] };
}

/** GET /api/certificates */
export interface CertificatesView {
  /** `side`: which root of a fleet with separate client and server roots (absent: the fleet's one root, or not a fleet root). */
  roots: (CertInfo & { name: string; kind: 'active-root' | 'distribution' | 'new-root' | 'old-with-new' | 'management-ca' | 'operator-ca'; side?: RootSide; pem?: string })[];
  devices: {
    count: number;
    earliest: { deviceId: string; notAfter: string } | null;
    latest: { deviceId: string; notAfter: string } | null;
    /** Device certificates expiring per month (`YYYY-MM`). */
    byMonth: { month: string; count: number }[];
  };
}

/** Server-Sent Events on /api/events: `event: <type>`, `data: <JSON>`; coalesced to a few per second. */
export type LiveEvent =
  | { type: 'fleet'; counts: FleetPage['counts']; changed: string[] }
  | { type: 'rotation'; rotation: RotationSummary }
  | { type: 'broker'; sample: BrokerSample; stale: boolean }
  | { type: 'audit'; entry: AuditEntry };
