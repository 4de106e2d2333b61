/**
 * Server-relay, the end device's side: a management client behind a
 * firewall that reaches only its printer polls that printer for commands
 * over its own mutual TLS (the seed's HTTP polling [0068-0069], here the
 * device's mTLS line protocol). Each poll is a fresh handshake with the
 * client's current identities (new certificate first, old as fallback), so
 * the poll is itself traffic through every intermediate state of a
 * rotation. Commands are handled one at a time by the agent; each
 * acknowledgement goes back on the same connection and counts as delivered
 * only once the relay says the broker has it; otherwise the relay keeps the
 * command and hands it out again, and the agent answers the repeat from its
 * stored result.
 */
import type { Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { DesiredState, TlsCounters } from '../../protocol/messages/device-state.ts';
import type { Agent } from '../agent.ts';
import { AgentError } from '../errors.ts';
import { deviceStateMessage, readDesired } from '../state-message.ts';
import type { DeviceTlsConnector, TlsTarget } from '../tls/device-tls-connector.ts';
import { UplinkState } from '../uplink.ts';
import { RelayChannel } from './channel.ts';

/** How a polling client is wired. */
export interface RelayUplinkOptions {
  agent: Agent;
  connector: DeviceTlsConnector;
  /** The relay's mTLS service; `serverId` is the relay's device id. */
  relay: TlsTarget;
  pollMs: number;
  clock: Clock;
  logger: Logger;
  tlsCounters: () => TlsCounters | null;
  /** Per request (ms); default 10 000. */
  timeoutMs?: number;
}

/** The polling loop of a client behind a server-role relay. */
export class RelayUplink extends UplinkState {
  desired: DesiredState | null = null;
  readonly counts = { polls: 0, commands: 0, acks: 0, failures: 0 };
  private running = true;
  private loop: Promise<void> = Promise.resolve();
  private wake: (() => void) | null = null;
  private readonly log: Logger;

  constructor(private readonly o: RelayUplinkOptions) {
    super();
    this.log = o.logger.child({ deviceId: o.agent.deviceId, component: 'relay-uplink', relay: o.relay.serverId });
  }

  /** Start polling. */
  start(): void {
    this.loop = (async () => {
      while (this.running) {
        await this.pollOnce();
        if (!this.running) break;
        await new Promise<void>((r) => {
          const t = setTimeout(r, this.o.pollMs);
          this.wake = () => { clearTimeout(t); r(); };
        });
        this.wake = null;
      }
    })();
  }

  /** One poll: authenticate, report state, take and handle commands, return acknowledgements. Never throws. */
  async pollOnce(): Promise<void> {
    const { result, socket } = await this.o.connector.open(this.o.relay);
    if (!socket) {
      this.failed(`relay ${this.o.relay.serverId} at ${this.o.relay.host}:${this.o.relay.port}: ${result.error?.code} ${result.error?.message}`);
      return;
    }
    const channel = new RelayChannel(socket, `relay ${this.o.relay.serverId}`);
    const timeout = this.o.timeoutMs ?? 10_000;
    try {
      this.counts.polls++;
      const reply = await channel.request({ t: 'poll', state: JSON.stringify(this.stateMessage()) }, timeout);
      if (reply.t === 'error') throw new AgentError('E_AGENT_RELAY', `relay ${this.o.relay.serverId} refused the poll: ${reply.code} ${reply.message}`);
      if (reply.t !== 'commands') throw new AgentError('E_AGENT_RELAY', `relay ${this.o.relay.serverId} answered a poll with ${reply.t}`);
      if (reply.desired !== null) this.desired = readDesired(reply.desired, this.o.agent.deviceId, this.log) ?? this.desired;
      for (const raw of reply.commands) {
        this.counts.commands++;
        const ack = await this.o.agent.handle(raw);
        const r = await channel.request({ t: 'ack', ack: JSON.stringify(ack) }, timeout);
        if (r.t !== 'ok') throw new AgentError('E_AGENT_RELAY', `relay ${this.o.relay.serverId} did not take the acknowledgement of #${ack.seq}: ${r.t === 'error' ? `${r.code} ${r.message}` : r.t}`);
        this.counts.acks++;
      }
      this.up(this.o.clock.now());
    } catch (err) {
      this.failed((err as Error).message);
    } finally {
      channel.close();
    }
  }

  private failed(reason: string): void {
    this.counts.failures++;
    if (this.connected || this.counts.failures === 1) this.log.warn('relay poll failed; trying again', { reason });
    this.down(reason);
  }

  private stateMessage() {
    const behind = this.desired !== null && this.desired.seq > this.o.agent.status().lastSeq;
    return deviceStateMessage(this.o.agent, behind ? 'behind' : 'online', { desired: this.desired, tls: this.o.tlsCounters(), clock: this.o.clock });
  }




  /** Stop polling (a poll in progress finishes). */
  async close(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }
}
