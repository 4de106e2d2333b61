/**
 * The manager's side of the MQTT link (ManagerTransport): mqtts with the
 * manager's management certificate, a persistent session (clean: false,
 * client id `trustroll-manager`) so acknowledgements published while the
 * manager is away wait for it, QoS 1 for commands and acknowledgements,
 * the retained desired state per device, and reconnection.
 *
 * Delivery is at-least-once; order and exactly-once effect come from the
 * command envelope (per-device sequence numbers, signed). A message is
 * accepted only from the topic of the device it names (mqtt-inbound.ts:
 * the broker ties that topic to the device's certificate). When a device
 * reports that the retained desired state is ahead of it (status `behind`,
 * e.g. it lost its session), the last command sent to it is published
 * again at once instead of waiting for the orchestrator's time-out.
 *
 * Relayed devices (../fleet/topology.ts): commands and desired state go to
 * `{relay}/via/{device}/...`; an acknowledgement or state arriving that way
 * counts only when the device is routed through that relay (`misrouted`
 * otherwise), and acknowledgements still need the device's own signature.
 *
 * Broker statistics ride on the same connection (Mosquitto ties the
 * session to the certificate's name, so the manager has exactly one): its
 * `$SYS/#` subscription and `sys` listeners are mqtt-sys-feed.ts.
 *
 * Events (for a dashboard): `connect`, `offline`, `error` (Error),
 * `state` (DeviceState), `sys` (topic, payload text, retained). Counters
 * are in `stats`. Keys are never logged.
 */
import { Waiters } from '../../protocol/waiters.ts';
import { EventEmitter } from 'node:events';
import { connect, type IPublishPacket, type MqttClient } from 'mqtt';
import { systemClock, type Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { assertDeviceState, desiredFor, type DeviceState } from '../../protocol/messages/device-state.ts';
import { ACK_FILTER, AUDIT_CHECKPOINT_TOPIC, isSysTopic, refusedTopics, LINK_QOS, MANAGER_IDENTITY, MQTT_PROTOCOL_VERSION, RELAY_ACK_FILTER, RELAY_STATE_FILTER, routedTopic, STATE_FILTER } from '../../protocol/topics.ts';
import { ManagerError } from '../errors.ts';
import { acceptDeviceMessage } from './mqtt-inbound.ts';
import { SysFeed } from './mqtt-sys-feed.ts';
import type { MqttTransportOptions, SysSubscription, TransportEvents, TransportStats } from './mqtt-transport-types.ts';
import type { AckHandler, ManagerTransport } from './transport.ts';

export type { MqttTransportOptions, SysSubscription, TransportEvents, TransportStats } from './mqtt-transport-types.ts';

/** Acknowledgements kept for a handler that is not registered yet (a restarted manager's session backlog). */
const MAX_EARLY_ACKS = 100_000;

/** ManagerTransport over MQTT 3.1.1. */
export class MqttManagerTransport extends EventEmitter<TransportEvents> implements ManagerTransport {
  readonly stats: TransportStats = {
    connected: false, connects: 0, disconnects: 0, commandsPublished: 0, desiredPublished: 0, republished: 0,
    acksReceived: 0, acksDropped: 0, statesReceived: 0, misrouted: 0, sysMessages: 0, sysSubscription: 'pending', lastError: null,
  };
  private readonly client: MqttClient;
  private readonly log: Logger;
  private readonly clock: Clock;
  private handler: AckHandler | null = null;
  /** Acknowledgements that arrived (from the persistent session) before a handler was registered. */
  private early: object[] = [];
  /** Last command sent per device and not yet acknowledged. */
  private readonly pending = new Map<string, Command>();
  private readonly desiredSeq = new Map<string, number>();
  private readonly states = new Map<string, DeviceState>();
  private subscribed = false;
  private readonly sys: SysFeed;
  private closed = false;
  private readonly waiters = new Waiters();

  constructor(private readonly o: MqttTransportOptions) {
    super();
    this.log = o.logger.child({ component: 'mqtt-transport' });
    this.clock = o.clock ?? systemClock;
    // The broker as protocol, host and port, not as a URL string: MQTT.js parses one with url.parse (DEP0169 on Node 24).
    const u = new URL(o.url);
    const protocol = u.protocol === 'mqtt:' ? 'mqtt' : 'mqtts';
    this.client = connect({
      protocol, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || (protocol === 'mqtts' ? 8883 : 1883)),
      ...o.tls, rejectUnauthorized: true,
      clientId: o.clientId ?? MANAGER_IDENTITY, clean: false, protocolVersion: MQTT_PROTOCOL_VERSION,
      reconnectPeriod: o.reconnectPeriodMs ?? 1_000, connectTimeout: o.connectTimeoutMs ?? 10_000,
      keepalive: o.keepaliveSec ?? 30, resubscribe: false,
    });
    this.sys = new SysFeed({ client: this.client, stats: this.stats, log: this.log, listeners: () => this.listeners('sys') as ((topic: string, payload: string, retained: boolean) => void)[], closed: () => this.closed });
    this.client.on('connect', (connack) => this.onConnect(connack.sessionPresent));
    // A listener added later (a dashboard's BrokerMonitor) needs the retained statistics too: subscribing again makes the broker resend them.
    (this as EventEmitter).on('newListener', (event: string | symbol) => { if (event === 'sys') this.sys.resubscribe(); });
    this.client.on('close', () => {
      if (!this.stats.connected) return;
      this.stats.connected = false;
      this.subscribed = false;
      this.stats.disconnects++;
      this.log.warn('broker connection lost; reconnecting');
      this.emit('offline');
    });
    this.client.on('error', (err) => {
      this.stats.lastError = err.message;
      this.log.warn('broker connection error', { reason: err.message, code: (err as { code?: string }).code });
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    // Handled before MQTT.js sends the PUBACK; once closing, nothing is PUBACKed, so the broker keeps it for the next session.
    this.client.handleMessage = (packet, done) => {
      if (this.closed) return;
      try {
        this.onMessage(packet.topic, packet.payload as Buffer, packet);
      } catch (err) {
        this.log.error('message handling failed; not acknowledged, reconnecting so the broker redelivers it', { topic: packet.topic, reason: (err as Error).message });
        this.client.stream?.destroy();
        return;
      }
      done();
    };
  }

  /** Connect and wait until subscribed: E_BROKER_SUBSCRIBE when the ACL refuses, E_BROKER_CONNECT after `timeoutMs`. */
  static async connect(o: MqttTransportOptions, timeoutMs = o.connectTimeoutMs ?? 10_000): Promise<MqttManagerTransport> {
    const t = new MqttManagerTransport(o);
    try {
      await t.ready(timeoutMs);
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  /** Resolves once connected and subscribed to every device's acks and state; E_BROKER_CONNECT / E_BROKER_SUBSCRIBE otherwise. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.subscribed) return Promise.resolve();
    return this.waiters.wait(timeoutMs, () => new ManagerError('E_BROKER_CONNECT', `${this.o.url}: not connected after ${timeoutMs} ms (${this.stats.lastError ?? 'no answer'})`));
  }

  private settle(err: Error | null): void {
    this.waiters.settle(err);
  }

  private onConnect(sessionPresent: boolean): void {
    this.stats.connects++;
    this.stats.connected = true;
    this.log.info('connected to broker', { sessionPresent, connects: this.stats.connects });
    const filters = [ACK_FILTER, STATE_FILTER, RELAY_ACK_FILTER, RELAY_STATE_FILTER];
    this.client.subscribe(filters, { qos: LINK_QOS }, (err) => {
      if (err) {
        const reason = `${err.message}; refused: ${refusedTopics(err, filters).join(', ')}`;
        this.stats.lastError = reason;
        this.log.error('broker refused the manager\'s subscriptions; check the ACL for trustroll-manager', { reason });
        const error = new ManagerError('E_BROKER_SUBSCRIBE', reason);
        this.settle(error);
        if (this.listenerCount('error') > 0) this.emit('error', error);
        return;
      }
      this.subscribed = true;
      this.settle(null);
      this.emit('connect');
    });
    this.sys.subscribe();
  }

  /** The `$SYS/#` subscription's state (BrokerMonitor reports a refusal at once). */
  get sysSubscription(): SysSubscription {
    return this.stats.sysSubscription;
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (isSysTopic(topic)) return this.sys.deliver(topic, payload, packet.retain);
    const m = acceptDeviceMessage(topic, payload, (id) => this.routeOf(id), this.stats, this.log);
    if (!m) return;
    const msg = m.msg;
    if (m.kind === 'ack') {
      this.stats.acksReceived++;
      if (this.handler) this.handler(msg as object);
      else if (this.early.length < MAX_EARLY_ACKS) this.early.push(msg as object);
    } else if (m.kind === 'state') {
      this.onState(msg, packet.retain);
    }
  }

  private onState(msg: unknown, retained: boolean): void {
    try {
      assertDeviceState(msg);
    } catch (err) {
      this.log.warn('invalid device state dropped', { reason: (err as Error).message });
      return;
    }
    this.stats.statesReceived++;
    this.states.set(msg.deviceId, msg);
    this.log.debug('device state', { deviceId: msg.deviceId, status: msg.status, lastSeq: msg.lastSeq, retained });
    this.emit('state', msg);
    const cmd = this.pending.get(msg.deviceId);
    if (msg.status === 'behind' && cmd && (msg.lastSeq ?? 0) < cmd.seq) {
      this.stats.republished++;
      this.log.info('device is behind its desired state; command sent again', { deviceId: cmd.deviceId, rotationId: cmd.rotationId, step: cmd.step, seq: cmd.seq });
      this.publishCommand(cmd);
    }
  }

  /** A device's relay (null: direct); a failing lookup counts as direct. */
  private routeOf(deviceId: string): string | null {
    try {
      return this.o.routeOf?.(deviceId) ?? null;
    } catch {
      return null;
    }
  }

  private publishCommand(cmd: Command, via = this.routeOf(cmd.deviceId)): void {
    this.client.publish(routedTopic(cmd.deviceId, via, 'cmd'), JSON.stringify(cmd), { qos: LINK_QOS });
    this.stats.commandsPublished++;
  }

  /** Publish a command (QoS 1) and, unless it is older than the last one, the retained desired state. */
  send(cmd: Command): void {
    const log = { deviceId: cmd.deviceId, rotationId: cmd.rotationId, step: cmd.step, seq: cmd.seq };
    if (this.closed) {
      this.log.debug('transport closed; command not published (resume resends it)', log);
      return;
    }
    // One route lookup (a database read) serves the command and its desired state.
    const via = this.routeOf(cmd.deviceId);
    try {
      this.publishCommand(cmd, via);
    } catch (err) {
      this.log.error('command not published', { ...log, reason: (err as Error).message });
      return;
    }
    if (cmd.seq >= (this.pending.get(cmd.deviceId)?.seq ?? 0)) this.pending.set(cmd.deviceId, cmd);
    if (cmd.seq >= (this.desiredSeq.get(cmd.deviceId) ?? 0)) {
      this.desiredSeq.set(cmd.deviceId, cmd.seq);
      this.client.publish(routedTopic(cmd.deviceId, via, 'desired'), JSON.stringify(desiredFor(cmd, this.clock.now())), { qos: LINK_QOS, retain: true });
      this.stats.desiredPublished++;
    }
    this.log.debug('command published', log);
  }

  /** Forget the command kept for a behind-report resend, once the orchestrator accepted its acknowledgement (a forged ack never clears it). */
  accepted(deviceId: string, seq: number): void {
    const pending = this.pending.get(deviceId);
    if (pending && seq >= pending.seq) this.pending.delete(deviceId);
  }

  /** Publish the newest signed audit checkpoint, retained (QoS 1; queued while the broker is away); resolves once the broker has it. */
  publishAuditCheckpoint(note: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.client.publish(AUDIT_CHECKPOINT_TOPIC, note, { qos: LINK_QOS, retain: true }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Remove a device's retained desired state (after a rotation, or when the device is retired). */
  clearDesired(deviceId: string): void {
    this.desiredSeq.delete(deviceId);
    this.client.publish(routedTopic(deviceId, this.routeOf(deviceId), 'desired'), '', { qos: LINK_QOS, retain: true });
  }

  /** Register the acknowledgement handler; acknowledgements received before it are handed over now. */
  onAck(handler: AckHandler): void {
    this.handler = handler;
    const early = this.early;
    this.early = [];
    for (const ack of early) handler(ack);
  }

  /** The last state each device reported (birth, behind, or its last will). */
  devices(): ReadonlyMap<string, DeviceState> {
    return this.states;
  }

  /** True while connected and subscribed. */
  get connected(): boolean {
    return this.stats.connected && this.subscribed;
  }

  /**
   * Leave the broker. The socket is dropped without waiting: acknowledgements
   * not yet handled stay un-PUBACKed in the persistent session for the next
   * run, and commands the broker had not confirmed are resent by `resume`.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.stats.connected = false;
    this.settle(new ManagerError('E_BROKER_CONNECT', 'transport closed'));
    await this.client.endAsync(true);
  }
}
