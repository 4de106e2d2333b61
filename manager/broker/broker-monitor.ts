/**
 * The broker's health for the dashboard's "Broker" view: reads the `$SYS`
 * statistics the transport receives (Mosquitto's `$SYS/broker/...` tree;
 * the embedded broker publishes the same, sys-topics.ts) and turns each
 * burst into one typed sample, with message rates, a bounded history for
 * a chart, and a `stale` flag when the broker publishes nothing.
 *
 * A burst (every `sys_interval + 1` s on Mosquitto 2.0) is complete once
 * no `$SYS` message came for a short settle time. Mosquitto publishes most
 * values only when they changed, so a sample carries the latest value of
 * every statistic; one that was never published is null, never 0.
 *
 * Rates come from the PUBLISH counters of two successive live bursts,
 * divided by the time between them. They are not computed across a burst
 * of retained messages (the values' age is unknown), a broker restart
 * (uptime went back or the version changed) or a counter that went back;
 * the broker's own one-minute average (`load/publish/.../1min`) stands in
 * then, when it publishes one.
 */
import { EventEmitter } from 'node:events';
import { systemClock, systemTimers, type Clock, type Timers } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import { isSysTopic } from '../../protocol/topics.ts';
import type { SysSubscription } from '../transport/mqtt-transport.ts';
import { EMBEDDED_VERSION_PREFIX, SYS, SYS_BROKER_PREFIX } from './sys-topics.ts';

/** Which broker published a sample (from `$SYS/broker/version`). */
export type BrokerKind = 'mosquitto' | 'embedded' | 'unknown';

/** One complete burst of broker statistics. Every number is null when the broker did not publish it. */
export interface BrokerSample {
  /** When the burst arrived (manager's clock, ISO 8601). */
  at: string;
  source: BrokerKind;
  /** `$SYS/broker/version`, e.g. "mosquitto version 2.0.11". */
  version: string | null;
  uptimeS: number | null;
  clientsConnected: number | null;
  /** PUBLISH packets received from clients since the broker started. */
  messagesReceived: number | null;
  /** PUBLISH packets sent to clients since the broker started. */
  messagesSent: number | null;
  /** PUBLISH messages dropped since start (Mosquitto: queue limits); null on the embedded broker. */
  dropped: number | null;
  /** Messages in the broker's store: queued, in flight and retained; null on the embedded broker. */
  stored: number | null;
  bytesReceived: number | null;
  bytesSent: number | null;
  /** PUBLISH packets received / sent per second. */
  msgInPerS: number | null;
  msgOutPerS: number | null;
}

/** Where `$SYS` messages come from: a MqttManagerTransport, or anything emitting the same `sys` event. */
export interface SysSource {
  on(event: 'sys', listener: (topic: string, payload: string, retained: boolean) => void): unknown;
  off(event: 'sys', listener: (topic: string, payload: string, retained: boolean) => void): unknown;
  /** 'refused' when the broker refused the `$SYS/#` subscription (reported at once). */
  readonly sysSubscription?: SysSubscription;
}

/** How the monitor reads the broker. */
export interface BrokerMonitorOptions {
  /** The broker's statistics interval (Mosquitto sys_interval, embedded sysIntervalMs); default 10 000. */
  intervalMs?: number;
  /** Samples kept for the chart; default one hour at `intervalMs` (60 to 3600). */
  historySize?: number;
  clock?: Clock;
  timers?: Timers;
  logger?: Logger;
}

/** Events a BrokerMonitor emits. */
export interface BrokerMonitorEvents {
  /** A burst is complete. */
  sample: [BrokerSample];
  /** `stale` changed (see `staleReason`). */
  stale: [stale: boolean];
}

/** What the dashboard shows instead of numbers when the broker publishes no statistics. */
export const NO_SYS_MESSAGE = 'the broker publishes no $SYS statistics: set sys_interval / allow the manager to read $SYS/#';

/** Intervals without a `$SYS` message after which the statistics are stale. */
const STALE_INTERVALS = 3;

const READ_TOPICS: ReadonlySet<string> = new Set(Object.values(SYS));

function int(v: string | undefined): number | null {
  if (v === undefined) return null;
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

function perSecondFromLoad(v: string | undefined): number | null {
  if (v === undefined) return null;
  const n = Number.parseFloat(v);
  return Number.isFinite(n) && n >= 0 ? n / 60 : null;
}

/** Which broker a version string names. */
export function brokerKind(version: string | null): BrokerKind {
  if (version?.startsWith('mosquitto version')) return 'mosquitto';
  if (version?.startsWith(EMBEDDED_VERSION_PREFIX)) return 'embedded';
  return 'unknown';
}

/** Turns `$SYS` bursts into BrokerSamples; `close()` detaches it from its source. */
export class BrokerMonitor extends EventEmitter<BrokerMonitorEvents> {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly log: Logger | null;
  private readonly intervalMs: number;
  private readonly settleMs: number;
  private readonly capacity: number;
  private readonly samples: BrokerSample[] = [];
  /** Latest value of every statistic read so far. */
  private values = new Map<string, string>();
  private burst: { values: Map<string, string>; startedAt: number; retained: boolean } | null = null;
  /** The last sample usable as the base of a rate (a live burst) and its arrival time. */
  private base: { sample: BrokerSample; at: number } | null = null;
  private readonly startedAt: number;
  private lastSysAt: number | null = null;
  private foreignSys = 0;
  private settleTimer: unknown = null;
  private staleTimer: unknown = null;
  private reportedStale = false;
  private readonly listener = (topic: string, payload: string, retained: boolean): void => this.onSys(topic, payload, retained);

  constructor(private readonly source: SysSource, o: BrokerMonitorOptions = {}) {
    super();
    this.clock = o.clock ?? systemClock;
    this.timers = o.timers ?? systemTimers;
    this.log = o.logger?.child({ component: 'broker-monitor' }) ?? null;
    this.intervalMs = o.intervalMs ?? 10_000;
    this.settleMs = Math.min(250, Math.max(20, Math.floor(this.intervalMs / 4)));
    this.capacity = o.historySize ?? Math.min(3600, Math.max(60, Math.ceil(3_600_000 / this.intervalMs)));
    this.startedAt = this.clock.now().getTime();
    source.on('sys', this.listener);
    this.armStale();
  }

  /** The newest sample, or null before the first burst. */
  latest(): BrokerSample | null {
    return this.samples.at(-1) ?? null;
  }

  /** Samples oldest first, at most `historySize` (one hour by default). */
  history(): readonly BrokerSample[] {
    return [...this.samples];
  }

  /** True when the broker refused `$SYS/#` or sent no statistic for 3 intervals; the dashboard shows `staleReason` then. */
  get stale(): boolean {
    if (this.source.sysSubscription === 'refused') return true;
    return this.clock.now().getTime() - (this.lastSysAt ?? this.startedAt) > STALE_INTERVALS * this.intervalMs;
  }

  /** Why the statistics are stale, in words for an operator; null while they are fresh. */
  get staleReason(): string | null {
    if (!this.stale) return null;
    if (this.source.sysSubscription === 'refused') return `the broker refused the manager's $SYS/# subscription: ${NO_SYS_MESSAGE}`;
    if (this.lastSysAt === null && this.foreignSys > 0) return `the broker publishes $SYS statistics trustroll does not read (expected Mosquitto's ${SYS_BROKER_PREFIX}...)`;
    if (this.lastSysAt === null) return NO_SYS_MESSAGE;
    const s = Math.round((this.clock.now().getTime() - this.lastSysAt) / 1000);
    return `no $SYS statistics from the broker for ${s} s (last at ${new Date(this.lastSysAt).toISOString()}): is the manager connected, and is sys_interval still set?`;
  }

  /** Stop listening and drop the timers; the history stays readable. */
  close(): void {
    this.source.off('sys', this.listener);
    if (this.settleTimer !== null) this.timers.clearTimeout(this.settleTimer);
    if (this.staleTimer !== null) this.timers.clearTimeout(this.staleTimer);
    this.settleTimer = this.staleTimer = null;
  }

  private onSys(topic: string, payload: string, retained: boolean): void {
    if (!isSysTopic(topic)) return;
    if (!READ_TOPICS.has(topic)) {
      if (!topic.startsWith(SYS_BROKER_PREFIX)) this.foreignSys++;
      return;
    }
    const now = this.clock.now().getTime();
    this.lastSysAt = now;
    // Mosquitto leads every live burst with uptime: a second one means the previous burst is over.
    // (Retained messages may come twice when two subscriptions overlap; they only repeat the same values.)
    if (!retained && this.burst && topic === SYS.uptime && this.burst.values.has(SYS.uptime)) this.complete();
    this.burst ??= { values: new Map(), startedAt: now, retained: false };
    this.burst.values.set(topic, payload);
    this.burst.retained ||= retained;
    if (this.settleTimer !== null) this.timers.clearTimeout(this.settleTimer);
    this.settleTimer = this.timers.setTimeout(() => { this.settleTimer = null; this.complete(); }, this.settleMs);
    if (this.reportedStale && !this.stale) {
      this.reportedStale = false;
      this.log?.info('broker statistics arrive again', { topic });
      this.emit('stale', false);
    }
    this.armStale();
  }

  /** Close the open burst into a sample. */
  private complete(): void {
    const burst = this.burst;
    this.burst = null;
    if (this.settleTimer !== null) this.timers.clearTimeout(this.settleTimer);
    this.settleTimer = null;
    if (!burst) return;
    const prev = this.values;
    const restarted = (burst.values.has(SYS.uptime) && (int(burst.values.get(SYS.uptime)) ?? 0) < (int(prev.get(SYS.uptime)) ?? 0))
      || (burst.values.has(SYS.version) && prev.has(SYS.version) && burst.values.get(SYS.version) !== prev.get(SYS.version));
    // After a restart the old broker's values are void (Mosquitto's first burst publishes every value).
    this.values = restarted ? new Map(burst.values) : new Map([...prev, ...burst.values]);
    const sample = this.sampleOf(burst.startedAt);
    const usable = !burst.retained && !restarted;
    const base = usable ? this.base : null;
    const dtS = base ? (burst.startedAt - base.at) / 1000 : 0;
    const rate = (now: number | null, then: number | null | undefined): number | null =>
      dtS > 0 && now !== null && then !== null && then !== undefined && now >= then ? (now - then) / dtS : null;
    sample.msgInPerS = rate(sample.messagesReceived, base?.sample.messagesReceived) ?? perSecondFromLoad(this.values.get(SYS.loadPublishReceived1min));
    sample.msgOutPerS = rate(sample.messagesSent, base?.sample.messagesSent) ?? perSecondFromLoad(this.values.get(SYS.loadPublishSent1min));
    // A live burst is a base for the next rate, even right after a restart (its counters are fresh).
    this.base = burst.retained ? null : { sample, at: burst.startedAt };
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
    this.emit('sample', sample);
  }

  private sampleOf(at: number): BrokerSample {
    const v = this.values;
    const version = v.get(SYS.version) ?? null;
    return {
      at: new Date(at).toISOString(),
      source: brokerKind(version),
      version,
      uptimeS: int(v.get(SYS.uptime)),
      clientsConnected: int(v.get(SYS.clientsConnected)),
      messagesReceived: int(v.get(SYS.publishReceived)),
      messagesSent: int(v.get(SYS.publishSent)),
      dropped: int(v.get(SYS.publishDropped)),
      stored: int(v.get(SYS.storeCount) ?? v.get(SYS.storeCountAlias)),
      bytesReceived: int(v.get(SYS.bytesReceived)),
      bytesSent: int(v.get(SYS.bytesSent)),
      msgInPerS: null,
      msgOutPerS: null,
    };
  }

  /** Report `stale` once when 3 intervals pass without a statistic. */
  private armStale(delayMs = STALE_INTERVALS * this.intervalMs + 1): void {
    if (this.staleTimer !== null) this.timers.clearTimeout(this.staleTimer);
    this.staleTimer = this.timers.setTimeout(() => {
      this.staleTimer = null;
      if (this.reportedStale) return;
      // A timer may fire a millisecond before the clock says the time is up: look again then, or the event never comes.
      if (!this.stale) return this.armStale(Math.max(1, STALE_INTERVALS * this.intervalMs + 1 - (this.clock.now().getTime() - (this.lastSysAt ?? this.startedAt))));
      this.reportedStale = true;
      this.log?.warn('broker statistics are stale', { reason: this.staleReason });
      this.emit('stale', true);
    }, delayMs);
  }
}
