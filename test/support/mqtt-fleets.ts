/**
 * Mocha wiring for tests that build MQTT fleets: every fleet made through
 * `create` is closed after its test, and a failing test prints the tail of
 * the fleet log first.
 */
import { MqttFleet, mqttFleetLog, type MqttFleetOptions } from '../../demo/mqtt-fleet.ts';

/** Register the hooks in the current `describe`; use `create` instead of MqttFleet.create. */
export function mqttFleets(logLines = 60): { create(o: MqttFleetOptions): Promise<MqttFleet> } {
  const open: MqttFleet[] = [];
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.error(mqttFleetLog.slice(-logLines).join('\n'));
    await Promise.all(open.splice(0).map((f) => f.close()));
  });
  return {
    create: async (o) => {
      const fleet = await MqttFleet.create(o);
      open.push(fleet);
      return fleet;
    },
  };
}
