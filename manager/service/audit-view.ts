/**
 * The audit log as the API and the live feed show it: an entry's API form
 * (http/api-types.ts AuditEntry), the per-step actions that are too dense
 * to stream live (the audit page reads them), and the detail an operator's
 * start is recorded with.
 */
import type { AuditRow } from '../audit/audit-log.ts';
import type { AuditEntry } from '../http/api-types.ts';
import type { NewRootPlan } from '../rotation/algorithm-plan.ts';

/** Audit actions not streamed live (one per command and acknowledgement). */
export const ROUTINE: ReadonlySet<string> = new Set(['step.sent', 'step.acked', 'step.resent']);

/** The API form of an audit row. */
export function toEntry(r: AuditRow): AuditEntry {
  return { seq: r.seq, at: r.at, actor: r.actor, action: r.action, rotationId: r.rotationId, deviceId: r.deviceId, step: r.step, code: r.code, detail: r.detail, hash: r.hash };
}

/** A rotation's offline policy as recorded: `exclude after N s`, or `wait` (the default). */
export function offlinePolicyText(excludeOfflineAfterS: number | null | undefined): string {
  return excludeOfflineAfterS ? `exclude after ${excludeOfflineAfterS} s` : 'wait';
}

/** The detail of `operator.start`: what was asked and what the new root will be. */
export function startDetail(schedule: string, opts: { excludeOfflineAfterS?: number | null; subject?: string; root?: string; distributeOldWithNew?: boolean }, plan: NewRootPlan): Record<string, unknown> {
  return {
    schedule, ...(opts.root ? { root: opts.root } : {}), offlinePolicy: offlinePolicyText(opts.excludeOfflineAfterS),
    algorithm: plan.to, ...(plan.from !== plan.to ? { algorithmFrom: plan.from } : {}), ...(opts.subject ? { subject: opts.subject } : {}),
    ...(plan.warnings.length ? { warnings: plan.warnings } : {}), ...(opts.distributeOldWithNew ? { distributeOldWithNew: true } : {}),
  };
}
