/**
 * What the manager accepts from a device topic (mqtt-transport.ts): a
 * message it can read, that names the device of its topic (the broker
 * ties that topic to the device's certificate) and, when it came through a
 * relay (`{relay}/via/{device}/...`), only from the relay the device is
 * routed through (../fleet/topology.ts): the broker vouches only for the relay. A
 * message refused here is logged and counted (`acksDropped`, `misrouted`);
 * acknowledgements still need the device's own signature afterwards.
 */
import type { Logger } from '../../protocol/log.ts';
import { parseDeviceTopic, type TopicKind } from '../../protocol/topics.ts';
import { parseWire } from '../../protocol/validate.ts';
import type { TransportStats } from './mqtt-transport-types.ts';

/**
 * The message on device topic `topic`, or null when it is none of ours or
 * is refused. `routeOf` gives a device's relay (null: direct).
 */
export function acceptDeviceMessage(topic: string, payload: Buffer, routeOf: (deviceId: string) => string | null, stats: TransportStats, log: Logger): { kind: TopicKind; msg: unknown } | null {
  const t = parseDeviceTopic(topic);
  if (!t || payload.length === 0) return null;
  let msg: unknown;
  try {
    msg = parseWire(payload, t.kind);
  } catch (err) {
    stats.acksDropped += t.kind === 'ack' ? 1 : 0;
    log.warn('unreadable message dropped', { deviceId: t.deviceId, topic, code: (err as { code?: string }).code });
    return null;
  }
  const route = t.via === undefined ? null : routeOf(t.deviceId);
  if (t.via !== undefined && route !== t.via) {
    // The broker vouches only for the relay; a relay may speak only for the devices routed through it.
    stats.misrouted++;
    stats.acksDropped += t.kind === 'ack' ? 1 : 0;
    log.warn('relayed message from a relay the device is not routed through; dropped', { deviceId: t.deviceId, topic, relay: t.via, route });
    return null;
  }
  const named = (msg as { deviceId?: unknown } | null)?.deviceId;
  if (named !== t.deviceId) {
    stats.acksDropped += t.kind === 'ack' ? 1 : 0;
    log.warn('message names another device than its topic; dropped', { deviceId: t.deviceId, topic, named: String(named) });
    return null;
  }
  return { kind: t.kind, msg };
}
