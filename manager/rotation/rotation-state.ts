/**
 * In-memory indexes over one rotation's step rows, so that readiness is
 * decided in O(peers) per acknowledgement even on fleets of 10,000: what
 * each device has acknowledged, how many of its peers acknowledged each
 * step, and which step each device has in flight.
 */
import { deviceSequence } from '../../protocol/schedule.ts';
import type { Role, Schedule } from '../../protocol/steps.ts';
import type { StepRow } from '../fleet/fleet-db.ts';

/** Index of one rotation's progress. */
export class RotationState {
  readonly rows = new Map<string, StepRow>();
  readonly roles = new Map<string, Role>();
  readonly sequence: Record<Role, string[]>;
  private readonly acked = new Set<string>();
  private readonly peerAcks = new Map<string, Map<string, number>>();
  private readonly flying = new Map<string, StepRow>();
  private remaining: number;
  /** With no peering graph every client talks to every server: one counter per step replaces per-device counts. */
  private readonly allToAll: boolean;
  private readonly globalAcks = new Map<string, number>();
  private readonly byRole: Record<Role, string[]> = { server: [], client: [] };

  constructor(readonly schedule: Schedule, rows: readonly StepRow[], roles: ReadonlyMap<string, Role>, private readonly peers: ReadonlyMap<string, readonly string[]>, allToAll = false) {
    this.sequence = { server: deviceSequence(schedule, 'server'), client: deviceSequence(schedule, 'client') };
    for (const [id, role] of roles) {
      this.roles.set(id, role);
      this.byRole[role].push(id);
    }
    this.allToAll = allToAll;
    for (const r of rows) this.rows.set(key(r.deviceId, r.step), r);
    this.remaining = this.rows.size;
    for (const r of rows) {
      if (r.status === 'acked') this.noteAcked(r.deviceId, r.step);
      else if (r.status === 'excluded') this.noteExcluded(r);
      else if (r.status === 'sent' || r.status === 'failed') this.flying.set(r.deviceId, r);
    }
  }

  /** Devices an operator took out of the rotation. */
  readonly excluded = new Set<string>();

  /**
   * Record that `row` will never be acknowledged because its device was
   * excluded: its peers stop waiting for it (it counts for their peer
   * prerequisites) and the rotation can complete without it (idempotent).
   */
  noteExcluded(row: StepRow): void {
    this.excluded.add(row.deviceId);
    if (this.flying.get(row.deviceId) === row || this.flying.get(row.deviceId)?.step === row.step) this.flying.delete(row.deviceId);
    this.noteAcked(row.deviceId, row.step);
  }

  /** The step row of a device. */
  row(deviceId: string, step: string): StepRow | undefined {
    return this.rows.get(key(deviceId, step));
  }

  peersOf(deviceId: string): readonly string[] {
    return this.peers.get(deviceId) ?? [];
  }

  isAcked(deviceId: string, step: string): boolean {
    return this.acked.has(key(deviceId, step));
  }

  /** How many peers of `deviceId` acknowledged `step`. */
  peerAckCount(deviceId: string, step: string): number {
    if (this.allToAll) return this.globalAcks.get(step) ?? 0;
    return this.peerAcks.get(deviceId)?.get(step) ?? 0;
  }

  /** True when every peer of `deviceId` acknowledged `step`. */
  allPeersAcked(deviceId: string, step: string): boolean {
    return this.peerAckCount(deviceId, step) === this.peersOf(deviceId).length;
  }

  /** Devices for which `deviceId`'s acknowledgement of `step` was the last missing peer acknowledgement. */
  completedPeersBy(deviceId: string, step: string): readonly string[] {
    const role = this.roles.get(deviceId);
    if (!role) return [];
    if (this.allToAll) return (this.globalAcks.get(step) ?? 0) === this.byRole[role].length ? this.byRole[role === 'server' ? 'client' : 'server'] : [];
    return this.peersOf(deviceId).filter((p) => this.allPeersAcked(p, step));
  }

  /** Record an acknowledgement in the indexes (idempotent). */
  noteAcked(deviceId: string, step: string): void {
    const k = key(deviceId, step);
    if (this.acked.has(k)) return;
    this.acked.add(k);
    if (this.rows.has(k)) this.remaining--;
    if (this.flying.get(deviceId)?.step === step) this.flying.delete(deviceId);
    if (this.allToAll) {
      this.globalAcks.set(step, (this.globalAcks.get(step) ?? 0) + 1);
      return;
    }
    for (const peer of this.peersOf(deviceId)) {
      let m = this.peerAcks.get(peer);
      if (!m) this.peerAcks.set(peer, (m = new Map()));
      m.set(step, (m.get(step) ?? 0) + 1);
    }
  }

  /** The device's next unacknowledged step, or null when it is done. */
  nextStep(deviceId: string): StepRow | null {
    const role = this.roles.get(deviceId);
    if (!role || this.excluded.has(deviceId)) return null;
    for (const step of this.sequence[role]) {
      if (!this.isAcked(deviceId, step)) return this.row(deviceId, step) ?? null;
    }
    return null;
  }

  /** Mark a row as the device's one step in flight. */
  noteInFlight(row: StepRow): void {
    this.flying.set(row.deviceId, row);
  }

  /** The device's step in flight (sent or failed, not acknowledged), if any. */
  inFlightOf(deviceId: string): StepRow | undefined {
    return this.flying.get(deviceId);
  }

  /** All rows in flight. */
  inFlight(): IterableIterator<StepRow> {
    return this.flying.values();
  }

  /** True when every device acknowledged its last step. */
  complete(): boolean {
    return this.remaining === 0;
  }
}

function key(deviceId: string, step: string): string {
  return `${deviceId}\u0000${step}`;
}
