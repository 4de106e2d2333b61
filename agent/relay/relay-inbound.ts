/**
 * Client-relay, the end device's side (PROTOCOL.md second and fourth
 * embodiments): a printer the manager cannot reach takes its commands from
 * the management client that relays for it. The client pushes them over
 * mutual TLS; the printer accepts pushes only from the relay named in
 * `via.relay` (the peer's certificate names it), handles every command
 * through the agent (signature, sequence and durability as over MQTT) and
 * answers with its signed acknowledgements and its state.
 */
import type { Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { DesiredState, TlsCounters } from '../../protocol/messages/device-state.ts';
import type { Agent } from '../agent.ts';
import { deviceStateMessage, readDesired } from '../state-message.ts';
import { UplinkState } from '../uplink.ts';
import { relayError, type RelayHandler } from './relay-server.ts';

/** How a relayed server is wired. */
export interface RelayInboundOptions {
  agent: Agent;
  relayId: string;
  clock: Clock;
  logger: Logger;
  tlsCounters: () => TlsCounters | null;
  /** Report the channel down after this long without a push (ms). */
  staleAfterMs: number;
}

/** Accepts the relay's pushes; its state is the device's command channel. */
export class RelayInbound extends UplinkState {
  desired: DesiredState | null = null;
  private lastPush = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly log: Logger;

  constructor(private readonly o: RelayInboundOptions) {
    super();
    this.log = o.logger.child({ deviceId: o.agent.deviceId, component: 'relay-inbound' });
    this.timer = setInterval(() => {
      if (this.connected && o.clock.now().getTime() - this.lastPush > o.staleAfterMs) this.down(`no push from relay ${o.relayId} for ${o.staleAfterMs} ms`);
    }, Math.max(250, Math.floor(o.staleAfterMs / 3)));
    this.timer.unref();
  }

  /** The handler for the device's TLS service. */
  readonly handler: RelayHandler = async (peer, req) => {
    if (peer !== this.o.relayId) {
      this.log.warn('relay push from a device that is not this device\'s relay; refused', { peer, relay: this.o.relayId });
      return { t: 'error', code: 'E_AGENT_RELAY', message: `${this.o.agent.deviceId} takes commands only through ${this.o.relayId}, not ${peer}` };
    }
    if (req.t !== 'push') return { t: 'error', code: 'E_AGENT_RELAY', message: `${req.t} is not a request a relayed server answers` };
    try {
      if (req.desired !== null) this.desired = readDesired(req.desired, this.o.agent.deviceId, this.log) ?? this.desired;
      const acks: string[] = [];
      // One at a time, in the order the relay gave; the agent checks signature and sequence of each.
      for (const raw of req.commands) acks.push(JSON.stringify(await this.o.agent.handle(raw)));
      this.lastPush = this.o.clock.now().getTime();
      this.up(this.o.clock.now());
      const behind = this.desired !== null && this.desired.seq > this.o.agent.status().lastSeq;
      const state = deviceStateMessage(this.o.agent, behind ? 'behind' : 'online', { desired: this.desired, tls: this.o.tlsCounters(), clock: this.o.clock });
      return { t: 'result', acks, state: JSON.stringify(state) };
    } catch (err) {
      this.log.error('relayed commands could not be handled', { reason: (err as Error).message });
      return relayError(err);
    }
  };




  /** Stop watching for pushes. */
  close(): void {
    clearInterval(this.timer);
  }
}
