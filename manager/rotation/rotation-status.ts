/**
 * The operator's view of a rotation, from the manager database alone (no
 * broker needed): per device, each step's status, attempts and error, and
 * for the next step who it waits for (waits.ts: every device-step, the
 * JSON's full lists; the text names five per device and counts the rest),
 * with the device-steps that hold others up, most-blocking first.
 */
import { deviceSequence } from '../../protocol/schedule.ts';
import { SCHEDULES, type Role } from '../../protocol/steps.ts';
import { phaseRows, phaseSchedule } from './phase.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb, RotationRow } from '../fleet/fleet-db.ts';
import { HELD_CODE } from './presence-gate.ts';
import { whoWaits, type DeviceWait, type HoldUp, type WaitGroup } from './waits.ts';

/** One device's line in the status. */
export interface DeviceProgress {
  deviceId: string;
  role: Role;
  steps: { step: string; status: string; attempts: number; error: string | null }[];
  /** Every device-step its next step waits for, as `device:step`. */
  waitingFor: string[];
}

/** Status of one rotation. */
export interface RotationStatus {
  rotation: RotationRow;
  devices: DeviceProgress[];
  acked: number;
  total: number;
  /** How many devices' next step waits for another device-step. */
  waitsTotal: number;
  /** Every device-step some device waits for, with how many it holds up; most-blocking first. */
  blockers: HoldUp[];
}

/** Status of `rotationId`, or of the most recent rotation. */
export function rotationStatus(db: FleetDb, rotationId?: string, opts: { honourPreferred?: boolean } = {}): RotationStatus {
  const rotation = rotationId ? db.rotation(rotationId) : db.rotations().at(-1) ?? null;
  if (!rotation) throw new ManagerError('E_ROTATION_UNKNOWN', rotationId ?? 'no rotation has been started');
  const every = db.steps(rotation.id);
  const schedule = phaseSchedule(rotation, every);
  const rows = phaseRows(every, schedule);
  const w = whoWaits(db, schedule, rows, opts);
  const waits = rotation.status === 'complete' ? [] : w.waits;
  const waiting = new Map(waits.map((x) => [x.deviceId, x]));
  const named = waitNames();
  const devices = [...w.roles].map(([deviceId, role]) => {
    const steps = deviceSequence(schedule, role).map((step) => {
      const r = w.row(deviceId, step);
      return { step, status: r?.status ?? 'pending', attempts: r?.attempts ?? 0, error: r?.errorCode ? `${r.errorCode}: ${r.errorMessage}` : null };
    });
    const wait = waiting.get(deviceId);
    return { deviceId, role, steps, waitingFor: wait ? named(wait) : [] };
  });
  const blockers = rotation.status === 'complete' ? [] : w.holdUps.sort((a, b) => b.blocks - a.blocks || a.deviceId.localeCompare(b.deviceId));
  return { rotation, devices, acked: rows.filter((r) => r.status === 'acked').length, total: rows.length, waitsTotal: waits.length, blockers };
}

/** A wait's device-steps as `device:step`; a list shared by many waits is spelled out once and shared too. */
function waitNames(): (w: DeviceWait) => string[] {
  const spelled = new Map<WaitGroup, string[]>();
  const of = (g: WaitGroup) => spelled.get(g) ?? spelled.set(g, g.devices.map((d) => `${d}:${g.step}`)).get(g)!;
  return (w) => (w.on.length === 1 ? of(w.on[0]!) : w.on.flatMap(of));
}

/** Which root a schedule changes, for the status line (nothing for the single fleet root). */
function rootNote(schedule: string): string {
  const side = SCHEDULES[schedule]?.root;
  return side ? `, changes the ${side} root only: ${side === 'client' ? 'servers\' trust stores and client certificates; no server certificate changes' : 'clients\' trust stores and server certificates; no client certificate changes'}` : '';
}

/** A step's status as shown: `held:offline` for a step held for its offline device (presence-gate.ts). */
function shownStatus(x: DeviceProgress['steps'][number]): string {
  return x.status === 'sent' && x.error?.startsWith(`${HELD_CODE}:`) ? 'held:offline' : x.status;
}

/** Human rendering: one line per device. */
export function describeRotationStatus(s: RotationStatus): string {
  const r = s.rotation;
  return [
    `rotation ${r.id} (${r.schedule}${rootNote(r.schedule)}): ${r.status}, ${s.acked}/${s.total} steps acknowledged${r.error ? `\n  stopped: ${r.error}` : ''}`,
    ...s.devices.map((d) => `  ${d.deviceId} (${d.role}): ${d.steps.map((x) => `${x.step}=${shownStatus(x)}${x.attempts > 1 ? `x${x.attempts}` : ''}`).join(' ')}${d.waitingFor.length ? `  waiting for ${d.waitingFor.slice(0, 5).join(', ')}${d.waitingFor.length > 5 ? ` and ${d.waitingFor.length - 5} more` : ''}` : ''}${d.steps.find((x) => x.error) ? `  last error ${d.steps.find((x) => x.error)!.error}` : ''}`),
  ].join('\n');
}
