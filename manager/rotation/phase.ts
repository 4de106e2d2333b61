/**
 * Which schedule a rotation is in: its forward schedule, or that
 * schedule's rollback once an abort started rolling it back (the step rows
 * of both phases live under the same rotation id), and whether a rollback
 * is still possible.
 */
import { rollbackBlockedBy } from '../../protocol/schedule.ts';
import { RENEW, ROLLBACK_OF, SCHEDULES, type Schedule } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { RotationRow, StepRow } from '../fleet/fleet-db.ts';

/** True for a root rotation; false for a renewal, which issues new certificates under the active root and makes no D or R1. */
export function changesRoot(r: Pick<RotationRow, 'schedule'>): boolean {
  return r.schedule !== RENEW.name;
}

/** True while (or after) the rotation is rolled back. */
export function inRollback(r: Pick<RotationRow, 'status'>): boolean {
  return r.status === 'rolling-back' || r.status === 'rolled-back';
}

/**
 * The schedule whose steps currently drive `r`: its rollback while or after
 * rolling back (or once rollback rows exist in `rows`, e.g. a rollback that
 * was aborted), else its forward schedule. E_ROTATION_UNKNOWN for an unknown name.
 */
export function phaseSchedule(r: Pick<RotationRow, 'id' | 'schedule' | 'status'>, rows: readonly StepRow[] = [], schedules: Readonly<Record<string, Schedule>> = SCHEDULES): Schedule {
  const forward = schedules[r.schedule];
  if (!forward) throw new ManagerError('E_ROTATION_UNKNOWN', `rotation ${r.id} uses unknown schedule ${r.schedule}`);
  const back = ROLLBACK_OF[forward.name];
  if (back && (inRollback(r) || phaseRows(rows, back).length > 0)) return back;
  return forward;
}

/** The step rows of the phase `schedule` (a rotation's table holds both phases). */
export function phaseRows(rows: readonly StepRow[], schedule: Schedule): StepRow[] {
  const ids = new Set(schedule.steps.map((s) => s.id));
  return rows.filter((r) => ids.has(r.step));
}

/**
 * Null when an abort can still roll `r` back (no server was sent a step
 * that replaces its certificate or drops a root), else the reason it cannot.
 */
export function rollbackBlocker(r: RotationRow, rows: readonly StepRow[]): string | null {
  if (r.status === 'complete' || r.status === 'rolled-back') return `rotation ${r.id} is ${r.status}`;
  if (inRollback(r)) return null;
  if (!changesRoot(r)) return 'a renewal has no rollback; every device keeps a valid certificate';
  const forward = SCHEDULES[r.schedule];
  const back = forward ? ROLLBACK_OF[forward.name] : undefined;
  if (!forward || !back) return `schedule ${r.schedule} has no rollback`;
  const blocking = new Set(rollbackBlockedBy(forward));
  const past = rows.find((s) => blocking.has(s.step) && s.status !== 'pending' && s.status !== 'excluded');
  if (past) return `${past.step} was ${past.status === 'acked' ? 'applied by' : 'sent to'} ${past.deviceId}${past.sentAt ? ` at ${past.sentAt}` : ''}: a device may already present its new certificate or have dropped the old root, so its old state cannot be restored; every intermediate state authenticates, so the rotation stops where it is (resume it to finish)`;
  return null;
}
