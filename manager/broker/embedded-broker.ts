/**
 * manager/broker/: the MQTT broker, from the manager's side. This file is
 * the room's front, the embedded broker; around it are its `$SYS` tree
 * (embedded-sys-tree.ts), the statistics' names and formats shared with
 * Mosquitto (sys-topics.ts), and the broker's health as the dashboard
 * shows it, read from either broker (broker-monitor.ts).
 *
 * The zero-setup default broker: aedes (MQTT 3.1.1) behind a TLS server
 * that requires a client certificate from the management CA. The identity
 * of a client is its certificate's common name, never the client id it
 * claims; the client id must equal that name, so a session can only be
 * resumed by the identity that owns it (Mosquitto: use_username_as_clientid).
 * The authorize hooks enforce the same rules as the Mosquitto ACL
 * (protocol/topics.ts): a device reads only its own cmd/desired topics and
 * writes only its own ack/state topics; only `trustroll-manager` publishes
 * commands; only the manager reads `$SYS`. Unlike Mosquitto's acl_file, a
 * refused subscription gets SUBACK 0x80, and a refused publish closes the
 * connection (MQTT-3.3.5-2).
 *
 * Broker statistics: Mosquitto's `$SYS/broker/...` tree every
 * `sysIntervalMs` (embedded-sys-tree.ts says which numbers aedes can
 * know). aedes' own `$SYS/<broker id>/...` topics (heartbeat, client ids of
 * new connections and subscriptions) are delivered to nobody. With
 * `sysIntervalMs: 0` no statistics are published and the manager's `$SYS`
 * subscription is refused, so it can say so at once.
 *
 * Sessions and retained messages live in memory (aedes-persistence): they
 * survive a client's disconnect but not a restart of the manager process.
 * Fleets that need broker persistence run Mosquitto.
 */
import { Aedes, type Client } from 'aedes';
import { once } from 'node:events';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import { mayPublish, mayReceive, maySubscribe, MANAGER_IDENTITY, isDeviceId, isSysTopic } from '../../protocol/topics.ts';
import { EmbeddedSysTree } from './embedded-sys-tree.ts';
import { ManagerError } from '../errors.ts';
import { SYS_BROKER_PREFIX } from './sys-topics.ts';

/** What the embedded broker needs: the management CA and its own server identity. */
export interface EmbeddedBrokerOptions {
  ca: string;
  cert: string;
  key: string;
  logger: Logger;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; default 0 (a free port, see `port`). */
  port?: number;
  /** `$SYS/broker/...` statistics interval; default 10 000 (Mosquitto's sys_interval 10); 0 publishes none. */
  sysIntervalMs?: number;
  /** Time source of the uptime and the load averages; default the system clock. */
  clock?: Clock;
}

/** Default interval of the `$SYS` statistics, as Mosquitto's default sys_interval. */
export const DEFAULT_SYS_INTERVAL_MS = 10_000;

/** Counters for a dashboard. */
export interface BrokerStats {
  refusedConnects: number;
  refusedPublishes: number;
  refusedSubscriptions: number;
  suppressedDeliveries: number;
}

/** Return codes of CONNACK (MQTT 3.1.1 §3.2.2.3). */
const IDENTIFIER_REJECTED = 2;
const NOT_AUTHORIZED = 5;

function refused(message: string, returnCode: number): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

/** A running embedded broker. */
export class EmbeddedBroker {
  readonly stats: BrokerStats = { refusedConnects: 0, refusedPublishes: 0, refusedSubscriptions: 0, suppressedDeliveries: 0 };
  private readonly identities = new WeakMap<Client, string>();
  private readonly sockets = new Set<Socket>();
  /** The `$SYS` statistics publisher; null with `sysIntervalMs: 0`. */
  readonly sys: EmbeddedSysTree | null;

  private constructor(private readonly aedes: Aedes, private readonly server: Server, private readonly log: Logger, o: EmbeddedBrokerOptions) {
    const interval = o.sysIntervalMs ?? DEFAULT_SYS_INTERVAL_MS;
    this.sys = interval > 0 ? new EmbeddedSysTree(aedes, interval, log, o.clock) : null;
  }

  /** Start aedes behind mutual TLS; resolves once the port listens. E_BROKER_START on failure. */
  static async start(o: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    const log = o.logger.child({ component: 'embedded-broker' });
    let self!: EmbeddedBroker;
    const aedes = await Aedes.createBroker({
      authenticate: (client, _user, _pass, done) => self.authenticate(client, done),
      authorizePublish: (client, packet, done) => {
        if (!client) return done(null);
        const id = self.identities.get(client);
        if (id && mayPublish(id, packet.topic)) return done(null);
        self.stats.refusedPublishes++;
        log.warn('publish refused by ACL', { identity: id, topic: packet.topic });
        done(new Error(`${id} may not publish to ${packet.topic}`));
      },
      authorizeSubscribe: (client, sub, done) => {
        const id = self.identities.get(client);
        if (!self.sys && isSysTopic(sub.topic)) {
          self.stats.refusedSubscriptions++;
          log.warn('subscription refused: this broker publishes no $SYS statistics (sysIntervalMs 0)', { identity: id, filter: sub.topic });
          return done(null, null);
        }
        if (id && maySubscribe(id, sub.topic)) return done(null, sub);
        self.stats.refusedSubscriptions++;
        log.warn('subscription refused by ACL', { identity: id, filter: sub.topic });
        done(null, null);
      },
      authorizeForward: (client, packet) => {
        // aedes' own $SYS/<id>/... tree (client ids, subscriptions) is internal: nobody receives it.
        if (isSysTopic(packet.topic) && !packet.topic.startsWith(SYS_BROKER_PREFIX)) return null;
        const id = self.identities.get(client);
        if (id && mayReceive(id, packet.topic)) {
          if (self.sys) self.sys.counters.publishSent++;
          return packet;
        }
        self.stats.suppressedDeliveries++;
        return null;
      },
    });
    const server = createServer({ ca: o.ca, cert: o.cert, key: o.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (socket) => {
      self.sys?.countBytes(socket);
      aedes.handle(socket);
    });
    self = new EmbeddedBroker(aedes, server, log, o);
    aedes.on('publish', (_packet, client) => { if (client && self.sys) self.sys.counters.publishReceived++; });
    server.on('secureConnection', (s) => { self.sockets.add(s); s.once('close', () => self.sockets.delete(s)); });
    server.on('tlsClientError', (err) => { self.stats.refusedConnects++; log.warn('TLS handshake refused', { reason: err.message }); });
    aedes.on('clientError', (client, err) => log.debug('client error', { identity: self.identities.get(client), reason: err.message }));
    try {
      server.listen(o.port ?? 0, o.host ?? '127.0.0.1');
      await once(server, 'listening');
    } catch (err) {
      await new Promise<void>((r) => aedes.close(() => r()));
      throw new ManagerError('E_BROKER_START', `embedded broker cannot listen on ${o.host ?? '127.0.0.1'}:${o.port ?? 0}: ${(err as Error).message}`);
    }
    self.sys?.start();
    log.info('embedded broker listening', { port: self.port, sysIntervalMs: o.sysIntervalMs ?? DEFAULT_SYS_INTERVAL_MS });
    return self;
  }

  private authenticate(client: Client, done: (err: (Error & { returnCode: number }) | null, ok: boolean | null) => void): void {
    const socket = client.conn as TLSSocket;
    const cn = socket.authorized ? socket.getPeerCertificate?.()?.subject?.CN : undefined;
    const identity = typeof cn === 'string' && (cn === MANAGER_IDENTITY || isDeviceId(cn)) ? cn : null;
    if (!identity) {
      this.stats.refusedConnects++;
      this.log.warn('connection refused: no usable certificate identity', { clientId: client.id });
      return done(refused('no usable certificate identity', NOT_AUTHORIZED), false);
    }
    if (client.id !== identity) {
      this.stats.refusedConnects++;
      this.log.warn('connection refused: client id is not the certificate identity', { identity, clientId: client.id });
      return done(refused(`client id must be ${identity}`, IDENTIFIER_REJECTED), false);
    }
    this.identities.set(client, identity);
    done(null, true);
  }

  /** Clients currently connected. */
  get connectedClients(): number {
    return this.aedes.connectedClients;
  }

  /** The port actually listened on. */
  get port(): number {
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  /** mqtts URL clients connect to. */
  get url(): string {
    return `mqtts://127.0.0.1:${this.port}`;
  }

  /**
   * Serve new TLS material (a management-root rotation's broker step, the
   * embedded equivalent of a Mosquitto restart): new connections get it at
   * once, and every open connection is closed so its client reconnects
   * under it. Sessions and queued messages stay (they live in aedes).
   */
  reloadTls(tls: { ca: string; cert: string; key: string }): void {
    this.server.setSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' });
    this.log.info('TLS material reloaded; clients reconnect under it', { clients: this.sockets.size });
    for (const s of this.sockets) s.destroy();
  }

  /** Stop accepting, close every client (their last wills are published first) and the broker. */
  async close(): Promise<void> {
    this.sys?.stop();
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    await new Promise<void>((r) => this.aedes.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
