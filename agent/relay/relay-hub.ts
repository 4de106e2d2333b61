/**
 * The relay's broker side (PROTOCOL.md "Who can reach whom"): a device with
 * an MQTT session serves the peers behind it that cannot reach the broker.
 * It subscribes, under its own id only, to `via/{id}/cmd|desired` of the
 * devices in its `relay.for` list, keeps each device's commands until that
 * device's acknowledgement for them is on the broker, and publishes the
 * acknowledgements and state the devices hand it, unchanged, on
 * `via/{id}/ack|state`.
 *
 * What a relay cannot do: forge or alter a command (the end device checks
 * the manager's signature), reorder or replay one (the end device checks
 * the sequence and answers a repeat from its stored result), forge or alter
 * an acknowledgement (the manager checks the device's signature), or speak
 * for a device that is not behind it (the end device is the mTLS peer whose
 * certificate names it, the manager checks the relay the topic names).
 * Dropping is possible and is detected: the manager times out and resends,
 * and the device's state shows `behind` against the retained desired state.
 *
 * The queue is in memory: after a restart the relay has the retained
 * desired states again, the end device reports `behind`, and the manager
 * resends (its database, not the relay, is the record of what is due).
 */
import type { Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import { offlineState } from '../../protocol/messages/device-state.ts';
import { parseDeviceTopic, relayFilters, relayTopic } from '../../protocol/topics.ts';
import { AgentError } from '../errors.ts';
import { MAX_RELAYED_COMMANDS } from './wire.ts';

/** Where a relay publishes: its own confirmed MQTT publish. */
export type RelayPublish = (topic: string, payload: string, retain: boolean) => Promise<void>;

/**
 * Test hooks that make this relay misbehave on purpose (the end-to-end
 * tests of a hostile relay); never set in a configuration.
 */
export interface RelayTamper {
  /** Change what is handed to a device: alter, drop, reorder or replay commands. */
  commands?: (deviceId: string, commands: string[]) => string[];
  /** Change an acknowledgement before it is published; null drops it. */
  ack?: (deviceId: string, ack: string) => string | null;
}

/** How a relay hub is wired. */
export interface RelayHubOptions {
  relayId: string;
  /** The devices this relay serves (its `relay.for`). */
  downstream: readonly string[];
  publish: RelayPublish;
  clock: Clock;
  logger: Logger;
  /** Publish `offline` for a device not heard from for this long (ms). */
  offlineAfterMs: number;
  tamper?: RelayTamper;
}

/** Counters for the technician's status and the tests. */
export interface RelayStats {
  commandsIn: number;
  commandsHandedOut: number;
  acksPublished: number;
  statesPublished: number;
  /** Messages refused: for a device not behind this relay, or an ack naming another device. */
  refused: number;
  /** Queued commands dropped because a device's queue was full. */
  overflow: number;
}

interface Queued { raw: string; seq: number | null }
interface Downstream { queue: Queued[]; desired: string | null; lastState: string; lastContact: number | null; offline: boolean }

/** Read `deviceId` and `seq` of a relayed JSON message without trusting it (the end device and the manager check it). */
function peek(raw: string): { deviceId: unknown; seq: number | null } {
  try {
    const m = JSON.parse(raw) as { deviceId?: unknown; seq?: unknown };
    return { deviceId: m?.deviceId, seq: Number.isSafeInteger(m?.seq) ? (m.seq as number) : null };
  } catch {
    return { deviceId: undefined, seq: null };
  }
}

/** The relay's queues and its publishing on behalf of the devices behind it. */
export class RelayHub {
  readonly stats: RelayStats = { commandsIn: 0, commandsHandedOut: 0, acksPublished: 0, statesPublished: 0, refused: 0, overflow: 0 };
  private readonly devices = new Map<string, Downstream>();
  private readonly log: Logger;
  private readonly wakers = new Set<(deviceId: string) => void>();
  private timer: NodeJS.Timeout;

  constructor(private readonly o: RelayHubOptions) {
    this.log = o.logger.child({ deviceId: o.relayId, component: 'relay' });
    for (const id of o.downstream) {
      if (id === o.relayId) throw new AgentError('E_AGENT_CONFIG', `setting "relay.for": device ${id} cannot relay for itself`);
      this.devices.set(id, { queue: [], desired: null, lastState: '', lastContact: null, offline: false });
    }
    this.timer = setInterval(() => void this.checkOffline(), Math.max(250, Math.floor(o.offlineAfterMs / 3)));
    this.timer.unref();
  }

  /** The broker subscriptions this relay needs (its own `via/+/cmd|desired`). */
  filters(): string[] {
    return relayFilters(this.o.relayId);
  }

  /** True if `deviceId` is behind this relay. */
  serves(deviceId: string): boolean {
    return this.devices.has(deviceId);
  }

  /** Be told when a device has new commands (a pushing relay sends them at once). */
  onCommands(waker: (deviceId: string) => void): () => void {
    this.wakers.add(waker);
    return () => this.wakers.delete(waker);
  }

  /** A message from the broker on one of this relay's `via` topics. */
  fromBroker(topic: string, payload: Buffer, retained: boolean): void {
    const t = parseDeviceTopic(topic);
    const d = t?.via === this.o.relayId ? this.devices.get(t.deviceId) : undefined;
    if (!t || !d) {
      this.stats.refused++;
      this.log.warn('message for a device this relay does not serve; dropped (check relay.for here and the device\'s route on the manager)', { topic });
      return;
    }
    const raw = payload.toString('utf8');
    if (t.kind === 'desired') {
      d.desired = raw.length > 0 ? raw : null;
      return;
    }
    if (t.kind !== 'cmd') return;
    this.stats.commandsIn++;
    const { seq } = peek(raw);
    // A resend of the same step replaces the queued copy; order stays the manager's (by sequence number).
    d.queue = d.queue.filter((q) => q.seq === null || q.seq !== seq);
    d.queue.push({ raw, seq });
    d.queue.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    if (d.queue.length > MAX_RELAYED_COMMANDS) {
      this.stats.overflow += d.queue.length - MAX_RELAYED_COMMANDS;
      d.queue = d.queue.slice(-MAX_RELAYED_COMMANDS);
      this.log.warn('relay queue full; the oldest commands were dropped (the manager resends what is not acknowledged)', { device: t.deviceId, retained });
    }
    for (const w of this.wakers) w(t.deviceId);
  }

  /** What to hand `deviceId` now: its queued commands in sequence order and its desired state. */
  pending(deviceId: string): { commands: string[]; desired: string | null } {
    const d = this.need(deviceId);
    this.contact(deviceId, d);
    let commands = d.queue.map((q) => q.raw);
    // Unreadable commands go once (the device answers them with an error); readable ones until acknowledged.
    d.queue = d.queue.filter((q) => q.seq !== null);
    if (this.o.tamper?.commands) commands = this.o.tamper.commands(deviceId, commands);
    this.stats.commandsHandedOut += commands.length;
    return { commands, desired: d.desired };
  }

  /**
   * Publish an acknowledgement `deviceId` (the authenticated mTLS peer)
   * produced; resolves once the broker has it. Refused (E_AGENT_RELAY) when
   * it names another device. Commands up to its sequence number leave the
   * queue.
   */
  async deliverAck(deviceId: string, ack: string): Promise<void> {
    const d = this.need(deviceId);
    this.contact(deviceId, d);
    const { deviceId: named, seq } = peek(ack);
    if (named !== deviceId) {
      this.stats.refused++;
      throw new AgentError('E_AGENT_RELAY', `an acknowledgement from ${deviceId} names device ${String(named)}; not relayed`);
    }
    const out = this.o.tamper?.ack ? this.o.tamper.ack(deviceId, ack) : ack;
    if (out !== null) await this.o.publish(relayTopic(this.o.relayId, deviceId, 'ack'), out, false);
    this.stats.acksPublished++;
    if (seq !== null) d.queue = d.queue.filter((q) => q.seq === null || q.seq > seq);
  }

  /** Publish `deviceId`'s state message (retained) when it changed; refused when it names another device. */
  async deliverState(deviceId: string, state: string): Promise<void> {
    const d = this.need(deviceId);
    this.contact(deviceId, d);
    const { deviceId: named } = peek(state);
    if (named !== deviceId) {
      this.stats.refused++;
      throw new AgentError('E_AGENT_RELAY', `a state message from ${deviceId} names device ${String(named)}; not relayed`);
    }
    const key = state.replace(/"at":"[^"]*"/, '');
    if (key === d.lastState) return;
    await this.o.publish(relayTopic(this.o.relayId, deviceId, 'state'), state, true);
    d.lastState = key;
    d.offline = false;
    this.stats.statesPublished++;
  }

  private need(deviceId: string): Downstream {
    const d = this.devices.get(deviceId);
    if (!d) {
      this.stats.refused++;
      throw new AgentError('E_AGENT_RELAY', `relay ${this.o.relayId} does not serve device ${deviceId}; add it to "relay.for" here and route it via ${this.o.relayId} on the manager`);
    }
    return d;
  }

  private contact(deviceId: string, d: Downstream): void {
    d.lastContact = this.o.clock.now().getTime();
    if (d.offline) this.log.info('relayed device is back', { device: deviceId });
  }

  /** Publish `offline` (retained) for devices not heard from within offlineAfterMs. */
  private async checkOffline(): Promise<void> {
    const now = this.o.clock.now().getTime();
    for (const [id, d] of this.devices) {
      if (d.offline || d.lastContact === null || now - d.lastContact < this.o.offlineAfterMs) continue;
      d.offline = true;
      d.lastState = '';
      this.log.warn('relayed device silent; reported offline', { device: id, silentMs: now - d.lastContact });
      await this.o.publish(relayTopic(this.o.relayId, id, 'state'), JSON.stringify(offlineState(id)), true).catch(() => { d.offline = false; });
    }
  }

  /** Report every device behind this relay offline (the relay is stopping) and stop the timer. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.devices.keys()].map((id) => this.o.publish(relayTopic(this.o.relayId, id, 'state'), JSON.stringify(offlineState(id)), true).catch(() => undefined)));
  }
}
