/**
 * The device's retained state topic on its MQTT link (mqtt-link.ts): a
 * birth message (state summary) on every connect and after each applied
 * step; `behind` when a retained desired state (seen on subscribe, i.e.
 * after being away) is ahead of the device, so the manager resends at once;
 * the last will `offline` is set by the link. With `tlsCounters`, the
 * message also carries the device's handshake counters and is published
 * again when they changed, at most every `intervalMs` (default 30 s).
 */
import type { Clock } from '../protocol/clock.ts';
import type { Logger } from '../protocol/log.ts';
import type { DesiredState, DeviceState, TlsCounters } from '../protocol/messages/device-state.ts';
import type { Agent } from './agent.ts';
import { deviceStateMessage, readDesired } from './state-message.ts';

/** What the state topic needs from its link. */
export interface LinkStateOptions {
  agent: Agent;
  clock: Clock;
  log: Logger;
  tlsCounters?: () => TlsCounters | null;
  intervalMs?: number;
  /** The highest sequence number the device applied (the link rotation's, when it runs one). */
  lastSeq: () => number;
  /** Publish the retained state message (QoS 1). */
  publish: (payload: string) => void;
  connected: () => boolean;
  closing: () => boolean;
  /** A `behind` report is about to go out (counted by the link). */
  onBehind: () => void;
}

/** The retained state message of one device's link. */
export class LinkState {
  /** The last desired state the manager published for this device. */
  desired: DesiredState | null = null;
  /** The status of the last state message (a counter refresh repeats it) and the counters it carried. */
  private lastStatus: 'online' | 'behind' = 'online';
  private lastTls = '';
  private readonly timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: LinkStateOptions) {
    if (o.tlsCounters) {
      this.timer = setInterval(() => this.refresh(), o.intervalMs ?? 30_000);
      this.timer.unref();
    }
  }

  /** This device's state message: online (birth), or behind the retained desired state. */
  message(status: 'online' | 'behind'): DeviceState {
    return deviceStateMessage(this.o.agent, status, { desired: this.desired, tls: this.o.tlsCounters?.() ?? null, clock: this.o.clock });
  }

  publish(status: 'online' | 'behind'): void {
    if (this.o.closing()) return;
    const msg = this.message(status);
    this.lastStatus = status;
    this.lastTls = JSON.stringify(msg.tls ?? null);
    this.o.publish(JSON.stringify(msg));
  }

  /** A desired-state message arrived (empty: cleared); a retained one ahead of the device is answered with `behind`. */
  onDesired(payload: Buffer, retained: boolean): void {
    if (payload.length === 0) {
      this.desired = null;
      return;
    }
    const desired = readDesired(payload, this.o.agent.deviceId, this.o.log);
    if (!desired) return;
    this.desired = desired;
    const lastSeq = this.o.lastSeq();
    if (retained && lastSeq < desired.seq) {
      this.o.onBehind();
      this.o.log.warn('behind the desired state after being away; asking the manager to resend', { rotationId: desired.rotationId, step: desired.step, seq: desired.seq, lastSeq });
      this.publish('behind');
    }
  }

  /** Publish the state again (same status) if the handshake counters changed since the last one; only while connected. */
  private refresh(): void {
    if (!this.o.connected() || JSON.stringify(this.o.tlsCounters?.() ?? null) === this.lastTls) return;
    this.publish(this.lastStatus);
  }

  /** Stop the counters' refresh. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
