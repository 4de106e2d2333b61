/**
 * Checks the orchestrator makes before it starts anything, kept apart so
 * that other modules (enrollment, the scheduler, catch-ups) can ask the
 * same questions without the orchestrator: which rotation is still open,
 * which schedules may start one, and whether a schedule fits the CA's root
 * layout.
 */
import { ROLLBACK_OF, SCHEDULES, SIDE_SCHEDULES, type RootSide, type Schedule } from '../../protocol/steps.ts';
import type { RotationAuthority } from './authority.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb, RotationRow } from '../fleet/fleet-db.ts';

/**
 * E_ROOT_SIDE unless `schedule` fits the CA's root layout: a schedule that
 * rotates one side's root (client-root, server-root) only for a fleet with
 * separate roots, and every other schedule only for a single-root fleet.
 */
export function assertRootSide(authority: Pick<RotationAuthority, 'separateRoots'>, schedule: Schedule): void {
  const separate = authority.separateRoots?.() ?? false;
  if (separate && !schedule.root) {
    throw new ManagerError('E_ROOT_SIDE', `this fleet keeps separate client and server roots, and schedule ${schedule.name} rotates a single fleet root; rotate one of them ("trustroll rotate --root client" or "--root server")`);
  }
  if (!separate && schedule.root) {
    throw new ManagerError('E_ROOT_SIDE', `schedule ${schedule.name} rotates the ${schedule.root} root of a separate-roots fleet, but this fleet has one root for both sides (rotate without --root)`);
  }
}

/** The rotation that blocks a new one: the newest not complete (an abort before anything was sent does not count). */
export function openRotation(db: FleetDb): RotationRow | null {
  for (const r of db.rotations().reverse()) {
    if (r.status === 'complete' || r.status === 'rolled-back') continue;
    if (r.status === 'aborted' && db.steps(r.id).every((s) => s.status === 'pending')) continue;
    return r;
  }
  return null;
}

/** E_ROTATION_ACTIVE while a rotation (or a management-root rotation) is open: devices may be part-way through it. */
export function refuseWhileOpen(db: FleetDb): void {
  const link = db.openLinkRotation();
  if (link) throw new ManagerError('E_ROTATION_ACTIVE', `management-root rotation ${link} is open; devices share their sequence numbers with it, so no fleet rotation can start. Finish it ("trustroll link rotate --resume") first`);
  const open = openRotation(db);
  if (!open) return;
  const steps = db.steps(open.id);
  const acked = steps.filter((r) => r.status === 'acked').length;
  throw new ManagerError('E_ROTATION_ACTIVE', `rotation ${open.id} is ${open.status} (${acked}/${steps.length} steps acknowledged); devices may be part-way through it, so no other rotation can start. Resume it ("trustroll rotate --resume ${open.id}" or POST /api/rotations/${open.id}/resume) and a new rotation can start once it completes`);
}

/**
 * The schedule an operator's request starts, and the root it rotates. Only
 * forward schedules with a rollback start rotations (not naive, not a
 * rollback or catch-up schedule); in a separate-roots fleet, one root's own
 * schedule: named (client-root, server-root) or picked by `root`.
 * E_BAD_REQUEST otherwise.
 */
export function startableSchedule(scheduleName: string, root?: RootSide): { schedule: Schedule; root: RootSide | undefined } {
  const named = SCHEDULES[scheduleName]?.root;
  if (named && root && root !== named) throw new ManagerError('E_BAD_REQUEST', `schedule ${scheduleName} rotates the ${named} root, not the ${root} root; give one of them`);
  const side = root ?? named;
  const schedule = side ? SIDE_SCHEDULES[side] : ROLLBACK_OF[scheduleName] ? SCHEDULES[scheduleName] : undefined;
  if (!schedule) throw new ManagerError('E_BAD_REQUEST', `schedule ${JSON.stringify(scheduleName)} cannot start a rotation; use ${Object.keys(ROLLBACK_OF).join(' or ')}`);
  return { schedule, root: side };
}
