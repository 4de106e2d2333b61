/**
 * Mocha wiring for tests that build MQTT fleets: every fleet made through
 * `create` is closed after its test (its audit log verified first), and a
 * failing test prints the tail of the fleet log first.
 */
import { assertAuditClean } from './audit.ts';
import { MqttFleet, mqttFleetLog, type MqttFleetOptions } from '../../demo/mqtt-fleet.ts';

/** Register the hooks in the current `describe`; use `create` instead of MqttFleet.create. */
export function mqttFleets(logLines = 60): { create(o: MqttFleetOptions): Promise<MqttFleet> } {
  const open: MqttFleet[] = [];
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.error(mqttFleetLog.slice(-logLines).join('\n'));
    const fleets = open.splice(0);
    // Every rotation these tests run must also prove its order from the audit log alone.
    const reports = fleets.map((f) => f.verifyAudit());
    await Promise.all(fleets.map((f) => f.close()));
    for (const r of reports) assertAuditClean(r);
  });
  return {
    create: async (o) => {
      const fleet = await MqttFleet.create(o);
      open.push(fleet);
      return fleet;
    },
  };
}
