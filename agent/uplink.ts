/**
 * What the health file and the technician's status need from whatever
 * carries the device's commands: the MQTT link (mqtt-link.ts) or, for a
 * relayed device, its relay connection (relay/).
 */

/** The state of a device's command channel. */
export interface Uplink {
  readonly connected: boolean;
  readonly connectedSince: Date | null;
  readonly stats: { lastError: string | null; connects: number; disconnects: number };
  /** Be told when it comes up or goes down; returns an unsubscribe function. */
  onLinkChange(listener: (connected: boolean) => void): () => void;
}

/** Up/down bookkeeping shared by the relay channels: counts transitions and tells listeners. */
export class UplinkState implements Uplink {
  readonly stats = { lastError: null as string | null, connects: 0, disconnects: 0 };
  private since: Date | null = null;
  private readonly listeners = new Set<(connected: boolean) => void>();

  get connected(): boolean {
    return this.since !== null;
  }

  get connectedSince(): Date | null {
    return this.since;
  }

  onLinkChange(listener: (connected: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Record a successful exchange at `now`. */
  up(now: Date): void {
    if (this.since) return;
    this.since = now;
    this.stats.connects++;
    for (const l of this.listeners) l(true);
  }

  /** Record a failed exchange (or silence) with its reason. */
  down(reason: string): void {
    this.stats.lastError = reason;
    if (!this.since) return;
    this.since = null;
    this.stats.disconnects++;
    for (const l of this.listeners) l(false);
  }
}
