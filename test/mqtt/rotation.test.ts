import { strict as assert } from 'node:assert';
import { BATCHED, SIX_STEP, type Schedule } from '../../protocol/steps.ts';
import { deviceSequence } from '../../protocol/schedule.ts';
import { mqttFleetLog, type MqttFleet } from '../../demo/mqtt-fleet.ts';
import { mqttFleets } from '../support/mqtt-fleets.ts';

/** Every device applied each of its steps exactly once, in schedule order. */
async function assertExactlyOnceInOrder(fleet: MqttFleet, schedule: Schedule, rotationId: string): Promise<void> {
  const devices = fleet.db.devices();
  assert.ok(devices.length > 0);
  for (const { id, role } of devices) {
    const applied = (await fleet.history(id)).filter((h) => h.rotationId === rotationId);
    assert.deepEqual(applied.map((h) => h.step), deviceSequence(schedule, role), `${id}: each step once and in order`);
    const seqs = applied.map((h) => h.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${id}: sequence numbers increase`);
  }
}

describe('mqtt: full rotation through a real broker, every command signed', function () {
  this.timeout(30_000);
  const fleets = mqttFleets(40);
  let fleet: MqttFleet | undefined;

  for (const [broker, schedule] of [['mosquitto', SIX_STEP], ['mosquitto', BATCHED], ['embedded', SIX_STEP]] as const) {
    it(`${schedule.name} over ${broker}: 3 servers x 5 clients complete, each step exactly once and in order`, async () => {
      fleet = await fleets.create({ servers: 3, clients: 5, broker });
      const t0 = Date.now();
      const rotation = await fleet.rotate(schedule);
      assert.equal(rotation.status, 'complete', rotation.error ?? '');
      await assertExactlyOnceInOrder(fleet, schedule, rotation.id);
      const rows = fleet.db.steps(rotation.id);
      assert.ok(rows.every((r) => JSON.parse(r.command!).sig?.alg === 'ES256'), 'every command carried a signature');
      assert.equal(fleet.transport.stats.acksDropped, 0);
      const online = [...fleet.transport.devices().values()].filter((s) => s.status === 'online');
      assert.equal(online.length, 8, 'every device published its birth state');
      const lines = mqttFleetLog.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(!mqttFleetLog.some((l) => l.includes('PRIVATE KEY') || l.includes(fleet!.pki.manager.key.slice(40, 80))), 'no key material in the logs');
      for (const l of lines.filter((x) => x.msg === 'command acknowledged' || x.msg === 'step acknowledged')) {
        assert.ok(l.deviceId && l.rotationId && l.step, `structured context on every step line: ${JSON.stringify(l)}`);
      }
      console.log(`      (${broker} ${schedule.name}: ${Date.now() - t0} ms, ${fleet.transport.stats.commandsPublished} commands)`);
    });
  }

  it('six-step over mosquitto with the devices in two child processes (the benchmark\'s layout): complete, each step exactly once and in order', async () => {
    fleet = await fleets.create({ servers: 2, clients: 4, broker: 'mosquitto', agentProcesses: 2, storage: 'memory' });
    assert.equal(fleet.agents.size, 0, 'no device runs in the manager\'s process');
    assert.equal(fleet.hosts.length, 2);
    const rotation = await fleet.rotate(SIX_STEP);
    assert.equal(rotation.status, 'complete', rotation.error ?? '');
    await assertExactlyOnceInOrder(fleet, SIX_STEP, rotation.id);
    assert.equal(fleet.transport.stats.acksDropped, 0, 'every acknowledgement carried a valid device signature');
    assert.equal([...fleet.transport.devices().values()].filter((s) => s.status === 'online').length, 6);
  });
});
