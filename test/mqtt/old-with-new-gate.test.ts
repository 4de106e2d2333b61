/**
 * OldWithNew goes only to agents that apply it. Every agent's state message
 * says which optional step fields it applies (`accepts`); the manager keeps
 * that in its database, and a rotation that would distribute OldWithNew to
 * a device whose agent reported it without that field is refused before
 * anything is made or sent (E_AGENT_OUTDATED) instead of stopping at the
 * old-root clean-up.
 */
import assert from 'node:assert/strict';
import { connect } from 'mqtt';
import { MqttFleet } from '../../demo/mqtt-fleet.ts';
import { ManagerError } from '../../manager/errors.ts';
import { openRotation } from '../../manager/rotation/orchestrator.ts';
import { OPTIONAL_PAYLOAD_FIELDS } from '../../protocol/messages/command.ts';
import { assertDeviceState, type DeviceState } from '../../protocol/messages/device-state.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { SCHEDULES } from '../../protocol/steps.ts';
import { deviceTopic, LINK_QOS } from '../../protocol/topics.ts';

/** Wait until `check` holds (polling), or fail naming `what`. */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Publish, with the device's own management certificate, the retained birth state an agent from before `accepts` sends. */
async function publishAsOlderAgent(fleet: MqttFleet, id: string): Promise<void> {
  const current = fleet.links.get(id)!.stateMessage('online');
  const older: DeviceState = { ...current };
  delete older.accepts;
  assertDeviceState(older);
  await fleet.disconnect(id);
  const client = connect(fleet.url, { ca: fleet.pki.ca, ...fleet.pki.device(id), rejectUnauthorized: true, clientId: id, clean: true, protocolVersion: 4, reconnectPeriod: 0 });
  try {
    await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject); });
    await client.publishAsync(deviceTopic(id, 'state'), JSON.stringify(older), { qos: LINK_QOS, retain: true });
  } finally {
    await client.endAsync();
  }
}

describe('mqtt: OldWithNew only to agents that apply it', function () {
  this.timeout(90_000);
  let fleet: MqttFleet | undefined;
  afterEach(async () => { await fleet?.close(); fleet = undefined; });

  it('agents report what they apply; an older agent stops the distribution before it starts; once upgraded the rotation distributes it to every device', async () => {
    fleet = await MqttFleet.create({ servers: 2, clients: 2, broker: 'embedded' });
    const f = fleet;
    const ids = [...f.agents.keys()];
    assert.ok(OPTIONAL_PAYLOAD_FIELDS.includes('oldWithNew'));
    await until(() => ids.every((id) => f.db.deviceAccepts().get(id)?.includes('oldWithNew')), 'every agent to report that it applies oldWithNew');

    // cli-2 runs an agent from before the field: its state says nothing of what it applies.
    await publishAsOlderAgent(f, 'cli-2');
    await until(() => f.db.deviceAccepts().get('cli-2')?.length === 0, 'the manager to record that cli-2 applies nothing optional');
    await f.connect('cli-2');
    await until(() => f.db.deviceAccepts().get('cli-2')?.includes('oldWithNew') === true, 'cli-2 upgraded (reconnected with the current agent)');
    await publishAsOlderAgent(f, 'cli-2');
    await until(() => f.db.deviceAccepts().get('cli-2')?.length === 0, 'cli-2 back on the older agent');

    const refused = await f.orchestrator.start({ schedule: SCHEDULES['six-step']!, distributeOldWithNew: true }).then(() => null, (err: unknown) => err);
    assert.ok(refused instanceof ManagerError, String(refused));
    assert.equal(refused.code, 'E_AGENT_OUTDATED');
    assert.match(refused.message, /1 device\(s\).*\(cli-2\)/);
    assert.match(refused.message, /without OldWithNew/);
    assert.equal(openRotation(f.db), null, 'nothing was started');
    assert.equal(f.db.rotations().length, 0, 'no rotation was made');

    // The agent upgraded: it reports the field and the same rotation goes through, every device keeping OldWithNew.
    await f.connect('cli-2');
    await until(() => f.db.deviceAccepts().get('cli-2')?.includes('oldWithNew') === true, 'cli-2 to report the field again');
    const id = await f.orchestrator.start({ schedule: SCHEDULES['six-step']!, distributeOldWithNew: true });
    const rot = await f.waitForEnd(30_000);
    assert.equal(rot.id, id);
    assert.equal(rot.status, 'complete', rot.error ?? '');
    const own = f.db.rotationOldWithNew(id)!;
    for (const [deviceId, agent] of f.agents) assert.equal(fingerprintPem(agent.snapshot().trust.oldWithNew!), fingerprintPem(own), `${deviceId} keeps OldWithNew`);
  });
});
