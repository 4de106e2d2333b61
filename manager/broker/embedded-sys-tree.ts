/**
 * The embedded broker's `$SYS/broker/...` statistics, by Mosquitto's names
 * and formats (sys-topics.ts), so the manager's broker view reads both
 * brokers the same way. Like Mosquitto, every value is retained, `uptime`
 * leads each burst, and the others are published only when they changed.
 *
 * What aedes can count exactly, and is published: connected clients,
 * PUBLISH packets received (after the ACL) and sent (forwarded to a
 * subscriber), MQTT bytes read and written on the TLS connections, and
 * Mosquitto's one-minute moving averages of the two PUBLISH counters.
 *
 * What it cannot know, and is therefore never published (the monitor shows
 * it as absent, not 0): `publish/messages/dropped` (aedes keeps every
 * queued QoS 1 message without a limit and does not report a QoS 0 message
 * lost on a closing socket) and `store/messages/count` (the in-memory
 * persistence keeps its queues private).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Aedes } from 'aedes';
import { systemClock, type Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import { EMBEDDED_VERSION_PREFIX, formatLoad, formatUptime, nextLoad1min, SYS } from './sys-topics.ts';

/** aedes keeps package.json out of its exports: read it next to its entry point. */
function aedesVersion(): string {
  try {
    const entry = createRequire(import.meta.url).resolve('aedes');
    return (JSON.parse(readFileSync(join(dirname(entry), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Counters the embedded broker feeds from its hooks. */
export interface SysCounters {
  publishReceived: number;
  publishSent: number;
  bytesReceived: number;
  bytesSent: number;
}

/** Publishes the embedded broker's statistics every `intervalMs`. */
export class EmbeddedSysTree {
  readonly counters: SysCounters = { publishReceived: 0, publishSent: 0, bytesReceived: 0, bytesSent: 0 };
  /** `$SYS/broker/version` of this broker. */
  readonly version = `${EMBEDDED_VERSION_PREFIX}${aedesVersion()} (trustroll embedded broker)`;
  private readonly startedAt: number;
  private readonly last = new Map<string, string>();
  private load = { at: 0, received: 0, sent: 0, receivedPerMin: 0, sentPerMin: 0 };
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly aedes: Aedes, private readonly intervalMs: number, private readonly log: Logger, private readonly clock: Clock = systemClock) {
    this.startedAt = clock.now().getTime();
    this.load.at = this.startedAt;
  }

  /** Publish the version and a first burst now, then every interval. */
  start(): void {
    this.put(SYS.version, this.version);
    this.publish();
    this.timer = setInterval(() => this.publish(), this.intervalMs);
    this.timer.unref();
  }

  /** Count the MQTT bytes aedes reads from and writes to one client connection (plaintext, as Mosquitto counts). */
  countBytes(socket: Socket): void {
    const read = socket.read.bind(socket);
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    const c = this.counters;
    socket.read = (size?: number) => {
      const chunk: unknown = read(size);
      if (chunk) c.bytesReceived += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length;
      return chunk;
    };
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      c.bytesSent += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8') : (chunk as Uint8Array).byteLength;
      return write(chunk, ...rest);
    }) as Socket['write'];
  }

  /** One burst: uptime, then every value that changed since the last burst. */
  publish(): void {
    const now = this.clock.now().getTime();
    const c = this.counters;
    const elapsedS = (now - this.load.at) / 1000;
    if (elapsedS > 0) {
      this.load = {
        at: now, received: c.publishReceived, sent: c.publishSent,
        receivedPerMin: nextLoad1min(this.load.receivedPerMin, c.publishReceived - this.load.received, elapsedS),
        sentPerMin: nextLoad1min(this.load.sentPerMin, c.publishSent - this.load.sent, elapsedS),
      };
    }
    this.put(SYS.uptime, formatUptime((now - this.startedAt) / 1000), true);
    this.put(SYS.clientsConnected, String(this.aedes.connectedClients));
    this.put(SYS.publishReceived, String(c.publishReceived));
    this.put(SYS.publishSent, String(c.publishSent));
    this.put(SYS.bytesReceived, String(c.bytesReceived));
    this.put(SYS.bytesSent, String(c.bytesSent));
    this.put(SYS.loadPublishReceived1min, formatLoad(this.load.receivedPerMin));
    this.put(SYS.loadPublishSent1min, formatLoad(this.load.sentPerMin));
  }

  private put(topic: string, value: string, always = false): void {
    if (!always && this.last.get(topic) === value) return;
    this.last.set(topic, value);
    this.aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(value), qos: 0, retain: true, dup: false }, (err) => {
      if (err) this.log.warn('$SYS statistic not published', { topic, reason: err.message });
    });
  }

  /** Stop publishing. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
