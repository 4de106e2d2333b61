/**
 * Which devices are online, since when, and what they last reported: fed by
 * the devices' retained state messages (birth, `behind`, last will
 * `offline`), kept in memory for the dashboard and written to the fleet
 * database in batches (one transaction per event-loop turn), so a restarted
 * service still knows since when a device has been away.
 */
import type { Clock } from '../../protocol/clock.ts';
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import type { PresenceRow, ServiceDb } from './service-db.ts';

/** Presence of every device that ever sent a state message. */
export class Presence {
  private readonly rows = new Map<string, PresenceRow>();
  private readonly dirty = new Map<string, PresenceRow>();
  private flushing = false;
  /** Bumped on every change (views cache on it). */
  version = 0;

  constructor(private readonly db: ServiceDb, private readonly clock: Clock, private readonly onChange: (deviceIds: string[]) => void) {
    for (const r of db.presence()) this.rows.set(r.deviceId, r);
  }

  /** Record a state message. A repeated status keeps its `since`. */
  note(state: DeviceState): void {
    const now = this.clock.now().toISOString();
    const online = state.status !== 'offline';
    const prev = this.rows.get(state.deviceId);
    // The last will carries no summary: keep the last known one.
    const merged: DeviceState = online || !prev ? state : { ...prev.state, status: 'offline', at: state.at ?? now };
    const row: PresenceRow = { deviceId: state.deviceId, online, since: prev && prev.online === online ? prev.since : now, lastSeen: online ? now : prev?.lastSeen ?? now, state: merged };
    this.rows.set(state.deviceId, row);
    this.dirty.set(state.deviceId, row);
    this.version++;
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    const batch = [...this.dirty.values()];
    this.dirty.clear();
    if (batch.length === 0) return;
    this.db.savePresence(batch);
    this.onChange(batch.map((r) => r.deviceId));
  }

  /** One device's presence, or undefined if never seen. */
  get(deviceId: string): PresenceRow | undefined {
    return this.rows.get(deviceId);
  }

  /** Every known presence. */
  all(): IterableIterator<PresenceRow> {
    return this.rows.values();
  }

  /** Write what is pending now (shutdown). */
  close(): void {
    this.flush();
  }
}
