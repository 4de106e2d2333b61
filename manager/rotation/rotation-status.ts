/**
 * The operator's view of a rotation, from the manager database alone (no
 * broker needed): per device, each step's status, attempts and error, and
 * for the next step who it waits for.
 */
import { blockers, deviceSequence } from '../../protocol/schedule.ts';
import { SCHEDULES, type Role } from '../../protocol/steps.ts';
import { phaseRows, phaseSchedule } from './phase.ts';
import { buildPeers } from '../fleet/peering.ts';
import { ManagerError } from '../errors.ts';
import type { FleetDb, RotationRow } from '../fleet/fleet-db.ts';
import { HELD_CODE } from './presence-gate.ts';

/** One device's line in the status. */
export interface DeviceProgress {
  deviceId: string;
  role: Role;
  steps: { step: string; status: string; attempts: number; error: string | null }[];
  waitingFor: string[];
}

/** Status of one rotation. */
export interface RotationStatus {
  rotation: RotationRow;
  devices: DeviceProgress[];
  acked: number;
  total: number;
}

/** Status of `rotationId`, or of the most recent rotation. */
export function rotationStatus(db: FleetDb, rotationId?: string, opts: { honourPreferred?: boolean } = {}): RotationStatus {
  const rotation = rotationId ? db.rotation(rotationId) : db.rotations().at(-1) ?? null;
  if (!rotation) throw new ManagerError('E_ROTATION_UNKNOWN', rotationId ?? 'no rotation has been started');
  const every = db.steps(rotation.id);
  const schedule = phaseSchedule(rotation, every);
  const rows = phaseRows(every, schedule);
  const roles = new Map<string, Role>(db.devices().filter((d) => rows.some((r) => r.deviceId === d.id)).map((d) => [d.id, d.role]));
  const peers = buildPeers(roles, db.peering());
  const byKey = new Map(rows.map((r) => [`${r.deviceId}\u0000${r.step}`, r]));
  // An excluded device's steps no longer hold its peers up.
  const acked = (dev: string, step: string) => { const st = byKey.get(`${dev}\u0000${step}`)?.status; return st === 'acked' || st === 'excluded'; };
  const devices = [...roles].map(([deviceId, role]) => {
    const seq = deviceSequence(schedule, role);
    const steps = seq.map((step) => {
      const r = byKey.get(`${deviceId}\u0000${step}`);
      return { step, status: r?.status ?? 'pending', attempts: r?.attempts ?? 0, error: r?.errorCode ? `${r.errorCode}: ${r.errorMessage}` : null };
    });
    const next = steps.find((s) => s.status !== 'acked' && s.status !== 'excluded');
    const waitingFor = next?.status === 'pending' && rotation.status !== 'complete' ? blockers(schedule, next.step, deviceId, peers.get(deviceId) ?? [], acked, opts) : [];
    return { deviceId, role, steps, waitingFor };
  });
  return { rotation, devices, acked: rows.filter((r) => r.status === 'acked').length, total: rows.length };
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
