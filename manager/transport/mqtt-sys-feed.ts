/**
 * The broker statistics on the manager's MQTT session: the transport also
 * subscribes to `$SYS/#` at QoS 0, in a subscription of its own, and hands
 * every `$SYS` message to its `sys` listeners (../broker/broker-monitor.ts), never
 * to the acknowledgement path. A `sys` listener added later makes the
 * transport subscribe again, so the broker resends its retained statistics
 * (the version is published only once). A broker that refuses it (no
 * `topic read $SYS/#` for trustroll-manager) costs one warning; commands
 * and acknowledgements flow as before.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../protocol/log.ts';
import { refusedTopics, SYS_FILTER } from '../../protocol/topics.ts';
import type { TransportStats } from './mqtt-transport-types.ts';

/** A `sys` listener: `$SYS/...` topic, payload as text, and whether it came from the retained store. */
type SysListener = (topic: string, payload: string, retained: boolean) => void;

/** What the feed uses of its transport. */
export interface SysFeedHost {
  client: MqttClient;
  stats: TransportStats;
  log: Logger;
  /** The transport's `sys` listeners now. */
  listeners(): readonly SysListener[];
  /** True once the transport is closing. */
  closed(): boolean;
}

/** The `$SYS/#` subscription and the delivery of its messages. */
export class SysFeed {
  private resubscribing = false;
  private listenerFailures = 0;

  constructor(private readonly t: SysFeedHost) {}

  /** `$SYS/#` at QoS 0, apart from the link's subscriptions: a refusal is logged once and changes nothing else. */
  subscribe(): void {
    const t = this.t;
    t.client.subscribe(SYS_FILTER, { qos: 0 }, (err) => {
      if (t.closed()) return;
      if (!err) {
        t.stats.sysSubscription = 'granted';
        return;
      }
      if (refusedTopics(err, [SYS_FILTER]).length === 0 || !(err as { packet?: unknown }).packet) {
        // Not a SUBACK refusal (the connection went away): the next connect subscribes again.
        t.log.debug('$SYS/# subscription not answered', { reason: err.message });
        return;
      }
      const first = t.stats.sysSubscription !== 'refused';
      t.stats.sysSubscription = 'refused';
      if (first) t.log.warn('broker refused the $SYS/# subscription: no broker statistics; allow trustroll-manager to read $SYS/# (topic read $SYS/#) and set sys_interval', { reason: err.message });
    });
  }

  /** Subscribe to `$SYS/#` again, once for every listener added in the same tick. */
  resubscribe(): void {
    if (this.resubscribing) return;
    this.resubscribing = true;
    setImmediate(() => {
      this.resubscribing = false;
      if (this.t.stats.connected && !this.t.closed()) this.subscribe();
    });
  }

  /** Each listener on its own: a failing one is logged, never turned into a reconnect, and the others still get the message. */
  deliver(topic: string, payload: Buffer, retained: boolean): void {
    const t = this.t;
    t.stats.sysMessages++;
    const text = payload.toString('utf8');
    for (const listener of t.listeners()) {
      try {
        listener(topic, text, retained);
      } catch (err) {
        // Warned once; a listener failing on every statistic would otherwise flood the log.
        const fields = { topic, reason: (err as Error).message, failures: ++this.listenerFailures };
        if (this.listenerFailures === 1) t.log.warn('$SYS listener failed; message skipped for it (further failures at debug level)', fields);
        else t.log.debug('$SYS listener failed', fields);
      }
    }
  }
}
