/**
 * The MQTT transport's settings, counters and events (mqtt-transport.ts;
 * its `$SYS` feed is mqtt-sys-feed.ts).
 */
import type { Clock } from '../../protocol/clock.ts';
import type { Logger } from '../../protocol/log.ts';
import type { DeviceState } from '../../protocol/messages/device-state.ts';

/** How the manager reaches the broker. */
export interface MqttTransportOptions {
  /** mqtts://host:port */
  url: string;
  /** Management CA and the manager's certificate and key (PEM). */
  tls: { ca: string; cert: string; key: string };
  logger: Logger;
  clock?: Clock;
  /** Default `trustroll-manager` (the broker requires it to equal the certificate CN). */
  clientId?: string;
  reconnectPeriodMs?: number;
  connectTimeoutMs?: number;
  keepaliveSec?: number;
  /** The relay a device is reached through, or null for a direct device (../fleet/topology.ts; default: all direct). */
  routeOf?: (deviceId: string) => string | null;
}

/** Counters and connection state for a dashboard. */
export interface TransportStats {
  connected: boolean;
  connects: number;
  disconnects: number;
  commandsPublished: number;
  desiredPublished: number;
  republished: number;
  acksReceived: number;
  acksDropped: number;
  statesReceived: number;
  /** Relayed messages dropped because they came through a relay the device is not routed through. */
  misrouted: number;
  /** `$SYS` messages handed to `sys` listeners. */
  sysMessages: number;
  /** The `$SYS/#` subscription: not answered yet, granted, or refused by the broker. */
  sysSubscription: SysSubscription;
  lastError: string | null;
}

/** State of the transport's `$SYS/#` subscription. */
export type SysSubscription = 'pending' | 'granted' | 'refused';

/** Events a MqttManagerTransport emits. */
export interface TransportEvents {
  connect: [];
  offline: [];
  error: [Error];
  state: [DeviceState];
  /** A broker statistic: `$SYS/...` topic, payload as text, and whether it came from the retained store. */
  sys: [topic: string, payload: string, retained: boolean];
}
