/**
 * A link step of the management-root rotation changed the link material
 * (mqtt-link.ts calls this after the step's PUBACK): once the
 * acknowledgement has left (the broker confirmed it, or after 5 s), drop
 * the connection; the reconnect presents the new material, and the
 * persistent session keeps everything queued for the device meanwhile.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../protocol/log.ts';

/** Drop `client`'s connection once nothing it published is in flight (at most 5 s), unless the link is closing. */
export function reconnectWithNewMaterial(client: MqttClient, log: Logger, closing: () => boolean): void {
  const until = Date.now() + 5_000;
  const go = () => {
    const inflight = Object.keys((client as unknown as { outgoing?: object }).outgoing ?? {}).length;
    if (inflight > 0 && client.connected && Date.now() < until) return void setTimeout(go, 10);
    if (closing()) return;
    log.info('reconnecting with the new link material');
    client.stream?.destroy();
  };
  setTimeout(go, 0);
}
