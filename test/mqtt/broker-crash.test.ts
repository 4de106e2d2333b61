import { strict as assert } from 'node:assert';
import { deviceSequence } from '../../protocol/schedule.ts';
import { SIX_STEP } from '../../protocol/steps.ts';
import type { MqttFleet } from '../../demo/mqtt-fleet.ts';
import { mqttFleets } from '../support/mqtt-fleets.ts';

describe('mqtt: the broker crashes mid-rotation', function () {
  this.timeout(30_000);
  const fleets = mqttFleets(60);
  let fleet: MqttFleet | undefined;

  it('SIGKILL and a restart on the same persistence directory: everyone reconnects and the rotation finishes, each step once', async () => {
    fleet = await fleets.create({ servers: 3, clients: 3, broker: 'mosquitto', policy: { ackTimeoutMs: 1_500 } });
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    const f = fleet;
    const end = Date.now() + 10_000;
    while (f.db.steps(id).filter((r) => r.status === 'acked').length < 5) {
      if (Date.now() > end) throw new Error('rotation did not progress');
      await new Promise((r) => setTimeout(r, 2));
    }
    await fleet.mosquitto.kill();
    const ackedAtCrash = fleet.db.steps(id).filter((r) => r.status === 'acked').length;
    assert.ok(ackedAtCrash < 18, `killed mid-rotation (${ackedAtCrash} of 18 steps acknowledged)`);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok([...fleet.links.values()].every((l) => !l.connected), 'every device lost the broker');
    await fleet.mosquitto.start();
    const rotation = await fleet.waitForEnd();
    assert.equal(rotation.status, 'complete', rotation.error ?? '');
    for (const [dev, agent] of fleet.agents) {
      const applied: string[] = (await fleet.history(dev)).map((h) => h.step);
      assert.deepEqual(applied, deviceSequence(SIX_STEP, agent.role), `${dev}: each step once, in order`);
    }
    assert.ok(fleet.transport.stats.connects >= 2, 'the manager reconnected');
    assert.ok([...fleet.links.values()].every((l) => l.stats.connects >= 2), 'every device reconnected');
  });
});

describe('mqtt: the manager restarts mid-rotation', function () {
  this.timeout(30_000);
  const fleets = mqttFleets(60);
  let fleet: MqttFleet | undefined;

  it('it leaves unhandled acknowledgements in its persistent session; resume finishes the rotation, each step once', async () => {
    fleet = await fleets.create({ servers: 2, clients: 2, broker: 'mosquitto', policy: { ackTimeoutMs: 1_500 } });
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    const f = fleet;
    while (f.db.steps(id).filter((r) => r.status === 'acked').length < 2) await new Promise((r) => setTimeout(r, 2));
    await fleet.stopManager();
    await new Promise((r) => setTimeout(r, 200)); // devices keep acknowledging what they already received
    fleet.rearm();
    await fleet.startManager({ resume: id });
    const rotation = await fleet.waitForEnd();
    assert.equal(rotation.status, 'complete', rotation.error ?? '');
    for (const [dev, agent] of fleet.agents) {
      const applied: string[] = (await fleet.history(dev)).map((h) => h.step);
      assert.deepEqual(applied, deviceSequence(SIX_STEP, agent.role), `${dev}: each step once, in order`);
    }
  });
});
