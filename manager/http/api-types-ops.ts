/**
 * The HTTP API's operations views (part of the contract in api-types.ts,
 * which re-exports every type here): the audit log, the broker's health
 * and the scheduler.
 */
import type { RootSide } from '../../protocol/steps.ts';
import type { BrokerSample } from '../broker/broker-monitor.ts';

/** One broker health sample ($SYS); defined where it is made. */
export type { BrokerSample };

/** One audit entry (append-only, hash-chained, manager-wide sequence). */
export interface AuditEntry {
  seq: number;
  at: string;
  /** `operator:alice`, `token:ci`, `manager`, or `device:<id>`. */
  actor: string;
  action: string;
  rotationId: string | null;
  deviceId: string | null;
  step: string | null;
  code: string | null;
  detail: Record<string, unknown> | null;
  hash: string;
}

/** GET /api/audit */
export interface AuditPage {
  entries: AuditEntry[];
  /** Pass as `after` (asc) or `before` (desc) for the next page; null at the end. */
  next: number | null;
}

/** GET /api/broker */
export interface BrokerView {
  url: string;
  /** The manager's own MQTT session. */
  connected: boolean;
  latest: BrokerSample | null;
  history: BrokerSample[];
  /** No $SYS message for a while: `note` says what to configure. */
  stale: boolean;
  note: string | null;
  transport: { connects: number; disconnects: number; commandsPublished: number; republished: number; acksReceived: number; acksDropped: number; statesReceived: number };
}

/** One decision of the scheduler (newest first in SchedulerView). */
export interface SchedulerDecisionView {
  at: string;
  what: 'rotate' | 'renew';
  /** `start`: work started; `skip`: not now (see `code`); `refused`: the start was refused (`code` is the error code). */
  outcome: 'start' | 'skip' | 'refused';
  code: string;
  reason: string;
  rotationId: string | null;
  /** Renewal: how many devices, and the first few of them. */
  devices: number;
  deviceIds: string[];
}

/** GET /api/schedule: the scheduler's settings, what falls due when, and its last decisions. */
export interface SchedulerView {
  /** False when `trustroll serve` runs without --rotate-before and --renew-before. */
  enabled: boolean;
  config: {
    checkCron: string; rotateBefore: string | null; renewBefore: string | null; windows: string[]; timeZone: 'UTC' | 'local';
    rotateSchedule: string; excludeOfflineAfter: string | null;
  };
  lastCheck: string | null;
  nextCheck: string | null;
  window: { open: boolean; nextStart: string | null };
  /** `root`: with separate roots, the root that expires first (the one due first). */
  rotation: { rootNotAfter: string; dueAt: string | null; root?: RootSide };
  renewal: { dueAt: string | null; dueNow: number };
  open: { id: string; schedule: string; status: string } | null;
  decisions: SchedulerDecisionView[];
  updatedAt: string;
}
