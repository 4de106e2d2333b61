/**
 * The broker view of the API (GET /api/broker, the dashboard's "Broker"
 * tab): the manager's own MQTT session and its counters, and the broker's
 * `$SYS` health as the monitor last sampled it, with its history.
 */
import type { BrokerMonitor } from '../broker/broker-monitor.ts';
import type { BrokerView } from '../http/api-types.ts';
import type { MqttManagerTransport } from '../transport/mqtt-transport.ts';

/** Build the view of the broker at `url`. */
export function brokerView(url: string, transport: Pick<MqttManagerTransport, 'stats' | 'connected'>, monitor: BrokerMonitor): BrokerView {
  const t = transport.stats;
  return {
    url, connected: transport.connected, latest: monitor.latest(), history: [...monitor.history()],
    stale: monitor.stale, note: monitor.staleReason,
    transport: { connects: t.connects, disconnects: t.disconnects, commandsPublished: t.commandsPublished, republished: t.republished, acksReceived: t.acksReceived, acksDropped: t.acksDropped, statesReceived: t.statesReceived },
  };
}
