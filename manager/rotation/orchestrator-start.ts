/**
 * Starting a rotation, and refusing to: everything the orchestrator checks
 * and makes at step S before it records anything. Refused while another
 * rotation (or a management-root rotation) is open, for a schedule that
 * does not fit the CA's root layout, for a new root some device cannot
 * verify, for a fleet without a server and a client, and when OldWithNew
 * would go to an agent that does not apply it or the CA made none; then the
 * CA makes the material (the new root, D and every device's new leaf).
 * rotation-guards.ts and renewal-plan.ts hold the checks a renewal shares.
 */
import { randomUUID } from 'node:crypto';
import { validateSchedule } from '../../protocol/schedule.ts';
import type { RootSide, Schedule } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { RotationRow } from '../fleet/fleet-db.ts';
import { assertVerifiable, planNewRoot } from './algorithm-plan.ts';
import type { NewRootChoice } from './authority.ts';
import type { OrchestratorOptions } from './orchestrator-context.ts';
import { assertPayloadAccepted } from './payload-gate.ts';
import { assertRootSide, refuseWhileOpen } from './rotation-guards.ts';

/** What `Orchestrator.start` is asked for. */
export interface StartOptions {
  schedule: Schedule;
  rotationId?: string;
  unsafe?: boolean;
  newRoot?: NewRootChoice;
  distributeOldWithNew?: boolean;
  onCreated?: (rotationId: string) => void;
}

/** A rotation ready to be recorded: nothing refused it and the CA made its material. */
export interface StartPlan {
  id: string;
  row: RotationRow;
  leaves: ReadonlyMap<string, string>;
  steps: { deviceId: string; step: string }[];
  oldWithNew: string | undefined;
  /** The new root's algorithm, the number of devices and the root rotated (undefined: the fleet's one root), for the log. */
  algorithm: string;
  devices: number;
  side: RootSide | undefined;
}

/**
 * Step S: validate the schedule, check that every device that declared its
 * algorithms can verify the new root (E_ALGORITHM_UNVERIFIABLE), have the
 * CA make the material (`newRoot`: algorithm and subject, each default the
 * active root's). Nothing is recorded yet.
 */
export async function planStart(o: OrchestratorOptions, opts: StartOptions): Promise<StartPlan> {
  refuseWhileOpen(o.db);
  const side = opts.schedule.root;
  assertRootSide(o.authority, opts.schedule);
  const plan = planNewRoot(o.db, o.authority.activeRoot(side).cert, opts.newRoot);
  assertVerifiable(plan);
  for (const w of plan.warnings) o.logger.warn('new root algorithm', { warning: w, from: plan.from, to: plan.to });
  if (!opts.unsafe) {
    const report = validateSchedule(opts.schedule);
    for (const w of report.warnings) o.logger.warn('schedule warning', { warning: w });
  }
  const devices = o.db.devices();
  if (!devices.some((d) => d.role === 'server') || !devices.some((d) => d.role === 'client')) {
    throw new ManagerError('E_FLEET_EMPTY', `fleet has ${devices.length} devices; need at least one server and one client`);
  }
  if (opts.distributeOldWithNew) assertPayloadAccepted(o.db, devices, opts.schedule, 'oldWithNew', o.logger, 'OldWithNew');
  const id = opts.rotationId ?? `rot-${o.clock.now().toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`;
  const now = o.clock.now();
  // One side's root rotated: only the devices it signs get new certificates; the other side's never change.
  const subjects = side ? devices.filter((d) => d.role === side) : devices;
  const material = await o.authority.prepare({ rotationId: id, subjects, now, newRoot: { algorithm: plan.to, subject: opts.newRoot?.subject }, ...(side ? { side } : {}) });
  const steps = devices.flatMap((d) => opts.schedule.steps.filter((s) => s.role === d.role).map((s) => ({ deviceId: d.id, step: s.id })));
  const row: RotationRow = {
    id, schedule: opts.schedule.name, status: 'running', unsafe: !!opts.unsafe, distribution: material.distribution,
    newRoot: material.newRoot, createdAt: now.toISOString(), updatedAt: now.toISOString(), error: null,
  };
  if (opts.distributeOldWithNew && !material.oldWithNew) {
    throw new ManagerError('E_SERVICE_CONFIG', 'the CA made no OldWithNew for this rotation (an external CA), so none can be distributed; start it without distributing OldWithNew');
  }
  return { id, row, leaves: material.leaves, steps, oldWithNew: material.oldWithNew, algorithm: plan.to, devices: devices.length, side };
}
