/**
 * A transport that delivers commands to agents in the same process, with
 * optional latency, loss and duplication driven by a seeded generator, so
 * tests can explore many interleavings and redelivery patterns. Commands to
 * a detached device wait in its queue (like a persistent MQTT session).
 */
import type { Timers } from '../../protocol/clock.ts';
import type { Command } from '../../protocol/messages/command.ts';
import type { AckHandler, ManagerTransport } from './transport.ts';

/** A device endpoint: takes a raw command, returns the raw acknowledgement. */
export type DeviceEndpoint = (raw: string) => Promise<string>;

/** Delivery behaviour. Rates are probabilities in [0, 1]. */
export interface InProcessOptions {
  timers: Timers;
  random?: () => number;
  maxLatencyMs?: number;
  dropRate?: number;
  duplicateRate?: number;
}

/** In-process ManagerTransport. */
export class InProcessTransport implements ManagerTransport {
  private readonly endpoints = new Map<string, DeviceEndpoint>();
  private readonly queued = new Map<string, string[]>();
  private handler: AckHandler = () => {};
  private closed = false;
  readonly stats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0 };

  constructor(private readonly o: InProcessOptions) {}

  /** Connect a device; anything queued while it was away is delivered now. */
  attach(deviceId: string, endpoint: DeviceEndpoint): void {
    this.endpoints.set(deviceId, endpoint);
    const q = this.queued.get(deviceId) ?? [];
    this.queued.delete(deviceId);
    for (const raw of q) this.deliver(deviceId, raw);
  }

  /** Disconnect a device; commands for it are queued until it returns. */
  detach(deviceId: string): void {
    this.endpoints.delete(deviceId);
  }

  onAck(handler: AckHandler): void {
    this.handler = handler;
  }

  send(cmd: Command): void {
    if (this.closed) return;
    this.stats.sent++;
    const raw = JSON.stringify(cmd);
    const rnd = this.o.random ?? Math.random;
    if (rnd() < (this.o.dropRate ?? 0)) {
      this.stats.dropped++;
      return;
    }
    this.deliver(cmd.deviceId, raw);
    if (rnd() < (this.o.duplicateRate ?? 0)) {
      this.stats.duplicated++;
      this.deliver(cmd.deviceId, raw);
    }
  }

  /** Hand a raw acknowledgement to the manager as if a (possibly compromised) broker delivered it. */
  injectAck(raw: string): void {
    this.handler(raw);
  }

  private deliver(deviceId: string, raw: string): void {
    const endpoint = this.endpoints.get(deviceId);
    if (!endpoint) {
      const q = this.queued.get(deviceId) ?? [];
      q.push(raw);
      this.queued.set(deviceId, q);
      return;
    }
    const delay = Math.floor((this.o.random ?? Math.random)() * (this.o.maxLatencyMs ?? 0));
    this.o.timers.setTimeout(() => {
      endpoint(raw).then(
        (ackRaw) => {
          this.stats.delivered++;
          if (!this.closed) this.handler(ackRaw);
        },
        () => undefined,
      );
    }, delay);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
