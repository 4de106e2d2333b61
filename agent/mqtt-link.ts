/**
 * The device's side of the MQTT link: connects out (firewall friendly) with
 * the device's management certificate, client id = device id, a persistent
 * session (clean: false) and QoS 1 subscriptions to its own cmd and desired
 * topics, so commands published while it is away wait for it.
 *
 * Each command goes to `agent.handle(raw)`; the acknowledgement is published
 * (QoS 1) and only then is the command's PUBACK sent. The agent's write is
 * durable before it returns the acknowledgement, so a crash or a dropped
 * connection at any point either leaves the command un-PUBACKed (the broker
 * redelivers it and the agent answers from its stored result) or has the
 * acknowledgement on its way. MQTT.js 5 honours `customHandleAcks` only for
 * MQTT 5, so the 3.1.1 equivalent is used: the client's `handleMessage`
 * hook, which MQTT.js awaits before it sends the PUBACK and before it reads
 * the next packet — commands are processed one at a time. A PUBACK is never
 * sent on a connection other than the one the command came in on.
 *
 * The retained state topic (mqtt-link-state.ts) carries a birth message on
 * every connect and after each applied step, `behind` when the retained
 * desired state is ahead of the device, and the last will `offline`.
 * Reconnects with exponential back-off and jitter.
 */
import { Waiters } from '../protocol/waiters.ts';
import { connect, MqttClient, Store, type IPublishPacket } from 'mqtt';
import type { Duplex } from 'node:stream';
import type { Clock } from '../protocol/clock.ts';
import type { Logger } from '../protocol/log.ts';
import type { Ack } from '../protocol/messages/ack.ts';
import { offlineState, type DesiredState, type DeviceState, type TlsCounters } from '../protocol/messages/device-state.ts';
import { deviceTopic, LINK_QOS, MQTT_PROTOCOL_VERSION, refusedTopics } from '../protocol/topics.ts';
import type { Agent } from './agent.ts';
import { AgentError } from './errors.ts';
import { reconnectWithNewMaterial } from './link-rotation/link-reconnect.ts';
import type { LinkRotationHook } from './link-rotation/link-rotator.ts';
import { LinkState } from './mqtt-link-state.ts';

/** Test and integration hooks. */
export interface DeviceLinkHooks {
  /** Runs after the acknowledgement was published and before the command's PUBACK. */
  beforePuback?: (ack: Ack, link: DeviceLink) => Promise<void> | void;
}

/** How a device reaches the broker. */
export interface DeviceLinkOptions {
  /** mqtts://host:port */
  url: string;
  agent: Agent;
  /** Management CA and this device's management certificate and key (PEM); ignored when `stream` is given. */
  tls: { ca: string; cert: string; key?: string };
  /** Opens an already-authenticated stream to the broker (hal/tls terminator for a token key); replaces url + tls. */
  stream?: () => Duplex;
  clock: Clock;
  logger: Logger;
  /** Reconnect back-off: first delay and cap (ms); default 1 s and 60 s. */
  backoff?: { initialMs: number; maxMs: number };
  keepaliveSec?: number;
  hooks?: DeviceLinkHooks;
  random?: () => number;
  /** The device's handshake counters for the state message (absent: the message carries none). */
  tlsCounters?: () => TlsCounters | null;
  /** Republish the state when the counters changed, at most this often (ms); default 30 000. */
  stateIntervalMs?: number;
  /** Management-root rotation (agent/link-rotation): takes the link's own commands; after an applied one the link reconnects. */
  linkRotation?: LinkRotationHook;
  /** Told of a refused link command (management-root rotation) before its acknowledgement leaves; the agent reports its own. */
  onRefused?: (ack: Ack, raw: Buffer) => Promise<void>;
  /** More subscriptions on the same session (a relay's `via/+/...` topics) and where their messages go. */
  extra?: { filters: readonly string[]; onMessage: (topic: string, payload: Buffer, retained: boolean) => void };
}

/** Counters for the technician's status and tests. */
export interface LinkStats {
  connects: number;
  disconnects: number;
  commands: number;
  redelivered: number;
  acksPublished: number;
  rejected: number;
  behindReports: number;
  lastError: string | null;
}

/** A device's MQTT session to the broker. */
export class DeviceLink {
  readonly stats: LinkStats = { connects: 0, disconnects: 0, commands: 0, redelivered: 0, acksPublished: 0, rejected: 0, behindReports: 0, lastError: null };
  private readonly client: MqttClient;
  private readonly state: LinkState;
  private readonly log: Logger;
  private readonly topics: { cmd: string; desired: string; ack: string; state: string };
  private readonly stores = { incomingStore: new Store(), outgoingStore: new Store() };
  private renewAfterPuback = false;
  private generation = 0;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private subscribed = false;
  private readonly waiters = new Waiters();
  private readonly unsubscribeChange: () => void;
  /** When the current session got its subscriptions, or null while not connected. */
  private since: Date | null = null;
  private readonly linkListeners = new Set<(connected: boolean) => void>();

  constructor(private readonly o: DeviceLinkOptions) {
    const id = o.agent.deviceId;
    this.log = o.logger.child({ deviceId: id, component: 'mqtt-link' });
    this.topics = { cmd: deviceTopic(id, 'cmd'), desired: deviceTopic(id, 'desired'), ack: deviceTopic(id, 'ack'), state: deviceTopic(id, 'state') };
    const session = {
      ...this.stores,
      clientId: id, clean: false, protocolVersion: MQTT_PROTOCOL_VERSION, reconnectPeriod: 0, resubscribe: false,
      keepalive: o.keepaliveSec ?? 30, connectTimeout: 10_000,
      // MQTT.js would otherwise pre-build 65,536 two-byte Buffers (about 6 MB of heap) on its first packet.
      writeCache: false,
      will: { topic: this.topics.state, payload: Buffer.from(JSON.stringify(offlineState(id))), qos: LINK_QOS, retain: true },
    } as const;
    // A management key inside a token: the HAL's TLS terminator does the mTLS, MQTT runs over its local socket.
    const stream = o.stream;
    // The broker as host and port, not as a URL string: MQTT.js parses one with url.parse (DEP0169 on Node 24).
    const u = stream ? null : new URL(o.url);
    this.client = stream
      ? new MqttClient(() => stream(), { ...session, protocol: 'mqtt' })
      : connect({ protocol: 'mqtts', host: u!.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u!.port || 8883), ...o.tls, rejectUnauthorized: true, ...session });
    this.client.handleMessage = (packet, done) => { void this.onPublish(packet, done); };
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) => {
      this.stats.lastError = err.message;
      this.log.warn('broker connection error', { reason: err.message, code: (err as { code?: string }).code });
    });
    this.state = new LinkState({
      agent: o.agent, clock: o.clock, log: this.log, tlsCounters: o.tlsCounters, intervalMs: o.stateIntervalMs,
      lastSeq: () => o.linkRotation?.lastSeq() ?? o.agent.status().lastSeq,
      publish: (payload) => this.client.publish(this.topics.state, payload, { qos: LINK_QOS, retain: true }),
      connected: () => this.connected, closing: () => this.closing, onBehind: () => { this.stats.behindReports++; },
    });
    this.unsubscribeChange = o.agent.onChange(() => this.state.publish('online'));
  }

  /** The last desired state the manager published for this device. */
  get desired(): DesiredState | null {
    return this.state.desired;
  }

  /** Resolves once connected and subscribed; E_AGENT_LINK when refused or after `timeoutMs`. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.subscribed) return Promise.resolve();
    return this.waiters.wait(timeoutMs, () => new AgentError('E_AGENT_LINK', `${this.o.url}: not connected and subscribed after ${timeoutMs} ms (${this.stats.lastError ?? 'no answer'})`));
  }

  private settle(err: Error | null): void {
    this.waiters.settle(err);
  }

  /** True while connected and subscribed. */
  get connected(): boolean {
    return this.subscribed && this.client.connected;
  }

  /** False only while down with no reconnect pending and no connection under way (wedged; the systemd watchdog checks it). */
  get alive(): boolean {
    return this.connected || this.retryTimer !== null || this.client.connected || !!(this.client.stream && !this.client.stream.destroyed);
  }

  /** Be told when the link comes up (subscribed) or goes down; returns an unsubscribe function. */
  onLinkChange(listener: (connected: boolean) => void): () => void {
    this.linkListeners.add(listener);
    return () => this.linkListeners.delete(listener);
  }

  private linkChanged(connected: boolean): void {
    for (const l of this.linkListeners) l(connected);
  }

  /** Since when the link is connected and subscribed, or null. */
  get connectedSince(): Date | null {
    return this.connected ? this.since : null;
  }

  private onConnect(): void {
    this.generation++;
    this.attempt = 0;
    this.stats.connects++;
    this.log.info('connected to broker', { connects: this.stats.connects });
    const filters = [this.topics.cmd, this.topics.desired, ...(this.o.extra?.filters ?? [])];
    this.client.subscribe(filters, { qos: LINK_QOS }, (err) => {
      if (err) {
        this.stats.lastError = `${err.message}; refused: ${refusedTopics(err, filters).join(', ')}`;
        this.log.error('broker refused the device\'s subscriptions; check its management certificate CN and the broker ACL', { reason: this.stats.lastError });
        this.settle(new AgentError('E_AGENT_LINK', `${this.o.url}: ${this.stats.lastError}`));
        return;
      }
      this.subscribed = true;
      this.since = this.o.clock.now();
      this.settle(null);
      this.linkChanged(true);
    });
    this.state.publish('online');
  }

  private onClose(): void {
    const was = this.subscribed;
    this.subscribed = false;
    if (was) this.linkChanged(false);
    if (this.closing) {
      this.log.info('disconnected from broker');
      return;
    }
    if (was) {
      this.stats.disconnects++;
      this.log.warn('broker connection lost; reconnecting with back-off');
    }
    if (this.retryTimer) return;
    const b = this.o.backoff ?? { initialMs: 1_000, maxMs: 60_000 };
    const ceiling = Math.min(b.maxMs, b.initialMs * 2 ** this.attempt++);
    const delay = Math.round(ceiling / 2 + (this.o.random ?? Math.random)() * ceiling / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closing) this.client.reconnect(this.stores);
    }, delay);
  }

  private async onPublish(packet: IPublishPacket, done: (err?: Error) => void): Promise<void> {
    const gen = this.generation;
    // Never PUBACK on a newer connection: its message ids are not this packet's.
    const puback = () => { if (gen === this.generation && this.client.connected && !this.client.stream?.destroyed) done(); };
    try {
      if (packet.topic === this.topics.cmd) await this.onCommand(packet);
      else if (packet.topic === this.topics.desired) this.state.onDesired(packet.payload as Buffer, packet.retain);
      else this.o.extra?.onMessage(packet.topic, packet.payload as Buffer, packet.retain);
      puback();
      if (this.renewAfterPuback) {
        // A link step changed the link material: reconnect with it once the acknowledgement has left.
        this.renewAfterPuback = false;
        reconnectWithNewMaterial(this.client, this.log, () => this.closing);
      }
    } catch (err) {
      // Not acknowledged: drop the connection so the broker redelivers after the back-off.
      this.stats.lastError = (err as Error).message;
      this.log.error('command could not be handled; not acknowledged, reconnecting', { reason: (err as Error).message });
      this.client.stream?.destroy();
    }
  }

  private async onCommand(packet: IPublishPacket): Promise<void> {
    this.stats.commands++;
    if (packet.dup) this.stats.redelivered++;
    const rotation = this.o.linkRotation?.accepts(packet.payload as Buffer) ? this.o.linkRotation : null;
    const result = rotation ? await rotation.handle(packet.payload as Buffer) : { ack: await this.o.agent.handle(packet.payload as Buffer), changed: false };
    const ack = result.ack;
    if (result.changed) this.renewAfterPuback = true;
    if (!ack.ok) {
      this.stats.rejected++;
      if (rotation) await this.o.onRefused?.(ack, packet.payload as Buffer);
    }
    this.client.publish(this.topics.ack, JSON.stringify(ack), { qos: LINK_QOS });
    this.stats.acksPublished++;
    this.log.debug('command acknowledged', { rotationId: ack.rotationId, step: ack.step, seq: ack.seq, ok: ack.ok, code: ack.error?.code, dup: packet.dup });
    await this.o.hooks?.beforePuback?.(ack, this);
  }

  /** This device's state message: online (birth), or behind the retained desired state. */
  stateMessage(status: 'online' | 'behind'): DeviceState {
    return this.state.message(status);
  }

  /** Publish on this session (QoS 1) and resolve once the broker has it (PUBACK); E_AGENT_LINK while not connected. */
  async publishConfirmed(topic: string, payload: string, retain: boolean): Promise<void> {
    if (!this.connected) throw new AgentError('E_AGENT_LINK', `${this.o.url}: not connected; ${topic} not published`);
    await this.client.publishAsync(topic, payload, { qos: LINK_QOS, retain });
  }

  /** Simulate a power cut or a network loss: the socket goes without DISCONNECT (the broker publishes the last will); reconnects with back-off. */
  drop(): void {
    this.client.stream?.destroy();
  }

  /**
   * Go offline for good. Graceful (default): publish the retained `offline`
   * state, then DISCONNECT. `abrupt`: drop the socket without DISCONNECT, as
   * a device losing power would; the broker publishes the last will. Either
   * way the session (and commands queued in it) stays on the broker.
   */
  async close(opts: { abrupt?: boolean } = {}): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (!opts.abrupt && this.client.connected) {
      await Promise.race([
        this.client.publishAsync(this.topics.state, JSON.stringify(offlineState(this.o.agent.deviceId)), { qos: LINK_QOS, retain: true }),
        new Promise((r) => setTimeout(r, 1_000)),
      ]).catch(() => undefined);
    }
    this.closing = true;
    // Whoever still waits for the link (a start that never linked) is told now, not at its time-out.
    this.settle(new AgentError('E_AGENT_LINK', `${this.o.url}: the link was closed before it connected`));
    this.state.close();
    this.unsubscribeChange();
    // Not connected (still connecting, or waiting to retry): nothing to DISCONNECT, and a
    // graceful end would leave a half-open connection to time out (30 s) before the process can exit.
    await this.client.endAsync(!!opts.abrupt || !this.client.connected);
  }
}
