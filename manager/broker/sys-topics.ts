/**
 * The broker statistics trustroll reads, by their Mosquitto `$SYS` names
 * (mosquitto.conf(5) "sys_interval", mosquitto(8) "BROKER STATUS"). The
 * embedded broker publishes the same names in the same formats, so one
 * parser (broker-monitor.ts) reads both brokers.
 *
 * Mosquitto publishes every value retained, `uptime` first in each burst,
 * and most others only when they changed; a burst comes every
 * `sys_interval + 1` seconds (2.0.x compares whole seconds with `>`).
 */

/** `$SYS/broker/...` topics, by what they hold. */
export const SYS = {
  /** "mosquitto version 2.0.11"; published once at start. */
  version: '$SYS/broker/version',
  /** "123 seconds" since the broker started. */
  uptime: '$SYS/broker/uptime',
  clientsConnected: '$SYS/broker/clients/connected',
  /** PUBLISH packets received from clients since start (not PINGREQ, PUBACK, ...). */
  publishReceived: '$SYS/broker/publish/messages/received',
  /** PUBLISH packets sent to clients since start (the `$SYS` messages included). */
  publishSent: '$SYS/broker/publish/messages/sent',
  /** PUBLISH messages the broker dropped (max_queued_messages / in-flight limits). */
  publishDropped: '$SYS/broker/publish/messages/dropped',
  /** Messages held in the store: queued for sessions, in flight, and retained. */
  storeCount: '$SYS/broker/store/messages/count',
  /** The same number under its older name. */
  storeCountAlias: '$SYS/broker/messages/stored',
  /** MQTT bytes (not TLS records) received and sent since start. */
  bytesReceived: '$SYS/broker/bytes/received',
  bytesSent: '$SYS/broker/bytes/sent',
  /** Moving averages of PUBLISH packets per minute over the last minute ("12.50"). */
  loadPublishReceived1min: '$SYS/broker/load/publish/received/1min',
  loadPublishSent1min: '$SYS/broker/load/publish/sent/1min',
} as const;

/** The prefix of the statistics both brokers publish (aedes' own `$SYS/<id>/...` tree is not one of them). */
export const SYS_BROKER_PREFIX = '$SYS/broker/';

/** What `$SYS/broker/version` starts with on the embedded broker. */
export const EMBEDDED_VERSION_PREFIX = 'aedes version ';

/** Mosquitto's format of `$SYS/broker/uptime`. */
export function formatUptime(seconds: number): string {
  return `${Math.floor(seconds)} seconds`;
}

/** Mosquitto's format of a load average ("%.2f"). */
export function formatLoad(perMinute: number): string {
  return perMinute.toFixed(2);
}

/**
 * One step of Mosquitto's per-minute moving average (sys_tree.c calc_load):
 * `count` events in the last `elapsedS` seconds move `current` towards
 * the rate they represent, with a one-minute time constant.
 */
export function nextLoad1min(current: number, count: number, elapsedS: number): number {
  if (!(elapsedS > 0)) return current;
  const perMinute = (count * 60) / elapsedS;
  return perMinute + Math.exp(-elapsedS / 60) * (current - perMinute);
}
