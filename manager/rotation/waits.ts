/**
 * Who waits for whom: the one answer behind `trustroll status`
 * (rotation-status.ts), the API and the dashboard (service/rotation-view.ts).
 * For every device whose next step is pending and not yet ready, the
 * device-steps it waits for, by prerequisite ("P4 of printer-17 waits for
 * P2 of console-3"); for every device-step that holds others up, how many
 * waits it is part of.
 *
 * The lists are full and come with their counts; they are cut only where a
 * page is drawn (the status text names five per device, the API's rotation
 * detail that the dashboard draws keeps 200 waits of 5 blockers and the
 * 100 most-blocking). Computed in O(devices + edges): when every client
 * talks to every server, the devices missing a step are listed once and
 * that one list is shared by every device waiting on it, and each
 * device-step's count comes from how many waits share the list, so a fleet
 * of 10,000 where thousands wait on thousands costs what the fleet costs.
 */
import { deviceSequence, stepOf } from '../../protocol/schedule.ts';
import type { Role, Schedule } from '../../protocol/steps.ts';
import type { FleetDb, StepRow } from '../fleet/fleet-db.ts';
import { buildPeers } from '../fleet/peering.ts';

/** One prerequisite of a wait: its step and the devices that have not done it yet (shared between waits when all talk to all). */
export interface WaitGroup {
  step: string;
  devices: readonly string[];
}

/** A device whose next step waits. */
export interface DeviceWait {
  deviceId: string;
  role: Role;
  step: string;
  /** What it waits for, per prerequisite not yet done (in the schedule's order), every device named. */
  on: readonly WaitGroup[];
  /** How many device-steps it waits for (the groups' sizes summed). */
  count: number;
}

/** A device-step that holds others up, and how many waits name it. */
export interface HoldUp {
  deviceId: string;
  step: string;
  blocks: number;
}

/** The answer for one phase of a rotation. */
export interface FleetWaits {
  /** Enrolled devices with rows in the phase, in device order. */
  roles: ReadonlyMap<string, Role>;
  /** Every waiting device, in device order (with `deviceId`: that device's only). */
  waits: DeviceWait[];
  /** Every device-step some wait names, with its count (unsorted). */
  holdUps: HoldUp[];
  /** The phase's row of a device-step. */
  row(deviceId: string, step: string): StepRow | undefined;
}

const key = (deviceId: string, step: string) => `${deviceId}\u0000${step}`;

/**
 * Who waits for whom in `rows`, the rows of `schedule`'s phase of a
 * rotation (an excluded device's steps hold nobody up). `honourPreferred:
 * false` drops `preferred` prerequisites as the orchestrator does;
 * `deviceId` answers for one device only, however far down the fleet.
 */
export function whoWaits(db: FleetDb, schedule: Schedule, rows: readonly StepRow[], opts: { honourPreferred?: boolean; deviceId?: string } = {}): FleetWaits {
  const byKey = new Map<string, StepRow>();
  const present = new Set<string>();
  for (const r of rows) {
    byKey.set(key(r.deviceId, r.step), r);
    present.add(r.deviceId);
  }
  const roles = new Map<string, Role>();
  for (const d of db.devices()) if (present.has(d.id)) roles.set(d.id, d.role);
  const done = (deviceId: string, step: string) => { const s = byKey.get(key(deviceId, step))?.status; return s === 'acked' || s === 'excluded'; };
  const edges = db.peering();
  const peers = edges.length === 0 ? null : buildPeers(roles, edges);
  // When all talk to all, a device's peers are every device of the other role: one list per (role, step), shared.
  const shared = new Map<string, WaitGroup>();
  const missing = (role: Role, step: string): WaitGroup => {
    let g = shared.get(`${role}\u0000${step}`);
    if (!g) shared.set(`${role}\u0000${step}`, (g = { step, devices: [...roles].filter(([id, r]) => r === role && !done(id, step)).map(([id]) => id) }));
    return g;
  };
  const sequences = new Map<Role, string[]>();
  const sequenceOf = (role: Role) => sequences.get(role) ?? sequences.set(role, deviceSequence(schedule, role)).get(role)!;
  const refs = new Map<WaitGroup, number>();
  const waits: DeviceWait[] = [];
  for (const [deviceId, role] of roles) {
    if (opts.deviceId !== undefined && deviceId !== opts.deviceId) continue;
    const next = sequenceOf(role).find((step) => !done(deviceId, step));
    if (next === undefined || (byKey.get(key(deviceId, next))?.status ?? 'pending') !== 'pending') continue;
    const on: WaitGroup[] = [];
    for (const pre of stepOf(schedule, next).after) {
      if (pre.strength === 'preferred' && opts.honourPreferred === false) continue;
      const group = pre.scope === 'self' ? (done(deviceId, pre.step) ? null : { step: pre.step, devices: [deviceId] })
        : peers === null ? missing(role === 'server' ? 'client' : 'server', pre.step)
          : { step: pre.step, devices: (peers.get(deviceId) ?? []).filter((p) => !done(p, pre.step)) };
      if (group && group.devices.length > 0) on.push(group);
    }
    if (on.length === 0) continue;
    for (const g of on) refs.set(g, (refs.get(g) ?? 0) + 1);
    waits.push({ deviceId, role, step: next, on, count: on.reduce((n, g) => n + g.devices.length, 0) });
  }
  // Each group's members hold up as many waits as share the group.
  const blocks = new Map<string, HoldUp>();
  for (const [g, n] of refs) {
    for (const d of g.devices) {
      const k = key(d, g.step);
      const h = blocks.get(k);
      if (h) h.blocks += n;
      else blocks.set(k, { deviceId: d, step: g.step, blocks: n });
    }
  }
  return { roles, waits, holdUps: [...blocks.values()], row: (deviceId, step) => byKey.get(key(deviceId, step)) };
}

/** The first `limit` device-steps a wait names, in order. */
export function firstBlockers(w: DeviceWait, limit: number): { deviceId: string; step: string }[] {
  const out: { deviceId: string; step: string }[] = [];
  for (const g of w.on) {
    for (const deviceId of g.devices) {
      if (out.length >= limit) return out;
      out.push({ deviceId, step: g.step });
    }
  }
  return out;
}
