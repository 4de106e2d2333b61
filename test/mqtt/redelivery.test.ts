import { strict as assert } from 'node:assert';
import { connectAsync } from 'mqtt';
import { deviceTopic, MQTT_PROTOCOL_VERSION } from '../../protocol/topics.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { SIX_STEP } from '../../protocol/steps.ts';
import type { MqttFleet } from '../../demo/mqtt-fleet.ts';
import { mqttFleets } from '../support/mqtt-fleets.ts';

/** Wait until `pred` holds, polling. */
async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('mqtt: redelivery (1, 2, 3, 2, 3, 4) never applies a step twice or out of order', function () {
  this.timeout(30_000);
  const fleets = mqttFleets(60);
  let fleet: MqttFleet | undefined;

  it('a dropped PUBACK makes Mosquitto redeliver, the manager replays older commands after newer ones; the device answers from its stored results', async () => {
    const acks: Ack[] = [];
    const durableBeforePuback: boolean[] = [];
    let dropped = false;
    fleet = await fleets.create({
      servers: 1, clients: 2, broker: 'mosquitto',
      hooks: (id) => id !== 'cli-1' ? undefined : {
        beforePuback: (ack, link) => {
          acks.push(ack);
          durableBeforePuback.push(fleet!.agents.get('cli-1')!.snapshot().lastSeq >= ack.seq);
          // The ack of P3 is produced and durable, but the connection dies before its PUBACK.
          if (ack.step === 'P3' && !dropped) { dropped = true; link.drop(); }
        },
      },
    });
    const first = await fleet.rotate(SIX_STEP);
    assert.equal(first.status, 'complete', first.error ?? '');
    assert.ok(fleet.links.get('cli-1')!.stats.redelivered >= 1, 'Mosquitto redelivered the un-PUBACKed P3 (DUP)');
    assert.ok(durableBeforePuback.every(Boolean), 'the step was durable in the store before the ack was released and the PUBACK sent');

    // The manager publishes cli-1's earlier commands again, after the later ones were applied.
    const rows = fleet.db.steps(first.id).filter((r) => r.deviceId === 'cli-1').sort((a, b) => a.seq! - b.seq!);
    for (const row of rows.slice(0, 2)) fleet.transport.send(JSON.parse(row.command!) as Command);
    await until(() => acks.filter((a) => a.rotationId === first.id).length >= 6, 'the replayed commands\' acks');
    fleet.rearm();
    const second = await fleet.rotate(SIX_STEP);
    assert.equal(second.status, 'complete', second.error ?? '');

    const seen = acks.map((a) => a.seq);
    assert.deepEqual(seen, [1, 2, 2, 3, 1, 2, 4, 5, 6], 'delivery order at cli-1: P3 redelivered, then seq 1 and 2 replayed after seq 3');
    for (const a of acks) {
      assert.ok(a.ok, `seq ${a.seq}: ${a.error?.message}`);
      assert.deepEqual(a, acks.find((b) => b.seq === a.seq), `seq ${a.seq}: a redelivered command gets the stored acknowledgement`);
    }
    const history = await fleet.history('cli-1');
    assert.deepEqual(history.map((h) => [h.seq, h.step]), [[1, 'P2'], [2, 'P3'], [3, 'P6'], [4, 'P2'], [5, 'P3'], [6, 'P6']], 'each step applied exactly once, in order');
  });
});

describe('mqtt: offline devices and persistent sessions', function () {
  this.timeout(30_000);
  const fleets = mqttFleets(60);
  let fleet: MqttFleet | undefined;

  const completed = (f: MqttFleet, id: string) => f.agents.get(id)!.snapshot().rotation?.completed ?? [];
  const servers = ['srv-1', 'srv-2', 'srv-3'];

  it('a client away during P2 gets it from its session on reconnect (across a broker restart); the servers\' P4 waits for it', async () => {
    fleet = await fleets.create({ servers: 3, clients: 3, broker: 'mosquitto', policy: { ackTimeoutMs: 20_000 } });
    await fleet.disconnect('cli-2');
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    const f = fleet;
    await until(() => servers.every((s) => completed(f, s).includes('P1')) && ['cli-1', 'cli-3'].every((c) => completed(f, c).includes('P3')), 'P1 on servers, P3 on the other clients');
    await new Promise((r) => setTimeout(r, 150));
    for (const s of servers) assert.deepEqual(completed(fleet, s), ['P1'], `${s} must not get P4 while cli-2 lacks D`);
    assert.ok(fleet.orchestrator.progress().find((p) => p.deviceId === 'srv-1')!.waitingFor.includes('cli-2:P2'));
    assert.equal(fleet.transport.devices().get('cli-2')?.status, 'offline', 'the dashboard sees cli-2 offline');

    await fleet.mosquitto.restart();              // SIGTERM: Mosquitto saves sessions; the queued P2 survives
    await fleet.connect('cli-2');
    const rotation = await fleet.waitForEnd();
    assert.equal(rotation.status, 'complete', rotation.error ?? '');
    const row = fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!;
    assert.equal(row.attempts, 1, 'P2 reached cli-2 from its persistent session, not from a resend');
  });

  it('a client whose session was lost while away finds the retained desired state, reports behind, and is resent its step at once', async () => {
    fleet = await fleets.create({ servers: 2, clients: 2, broker: 'mosquitto', policy: { ackTimeoutMs: 60_000 } });
    await fleet.disconnect('cli-2');
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    const f = fleet;
    await until(() => f.db.steps(id).some((r) => r.deviceId === 'cli-2' && r.step === 'P2' && r.status === 'sent'), 'P2 sent to cli-2');
    // A clean session under cli-2's identity discards the session and the P2 queued in it (a reflashed device, an expired session).
    const wipe = await connectAsync(fleet.url, { ca: fleet.pki.ca, ...fleet.pki.device('cli-2'), rejectUnauthorized: true, clientId: 'cli-2', clean: true, protocolVersion: MQTT_PROTOCOL_VERSION, reconnectPeriod: 0 });
    await wipe.endAsync();
    const link = await fleet.connect('cli-2');
    const rotation = await fleet.waitForEnd(20_000);
    assert.equal(rotation.status, 'complete', rotation.error ?? '');
    assert.equal(link.stats.behindReports, 1, 'cli-2 saw the retained desired state ahead of its last sequence number');
    assert.ok(fleet.transport.stats.republished >= 1, 'the manager resent on the behind report, not after its 60 s time-out');
    const row = fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!;
    assert.equal(row.attempts, 1, 'no time-out resend was needed');
    assert.deepEqual((await fleet.history('cli-2')).map((h) => h.step), ['P2', 'P3', 'P6'], 'each step once, in order');
  });

  it('a forged acknowledgement does not delay the resend to a device that lost its queued command (only an accepted ack clears it)', async () => {
    fleet = await fleets.create({ servers: 2, clients: 2, broker: 'mosquitto', policy: { ackTimeoutMs: 60_000 } });
    await fleet.disconnect('cli-2');
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    const f = fleet;
    await until(() => f.db.steps(id).some((r) => r.deviceId === 'cli-2' && r.step === 'P2' && r.status === 'sent'), 'P2 sent to cli-2');
    const p2 = fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!;
    // Someone holding cli-2's link certificate (not its HAL key) wipes its session and claims P2 done, unsigned.
    const forger = await connectAsync(fleet.url, { ca: fleet.pki.ca, ...fleet.pki.device('cli-2'), rejectUnauthorized: true, clientId: 'cli-2', clean: true, protocolVersion: MQTT_PROTOCOL_VERSION, reconnectPeriod: 0 });
    const forged = {
      v: 1, kind: 'ack', deviceId: 'cli-2', rotationId: id, seq: p2.seq, step: 'P2', ok: true, at: new Date().toISOString(),
      state: { storeHash: 'a'.repeat(64), rotationId: id, completed: ['P2'], trust: { current: 'b'.repeat(64), distribution: 'c'.repeat(64), next: null }, identity: { active: 'd'.repeat(64), fallback: null } },
    };
    await forger.publishAsync(deviceTopic('cli-2', 'ack'), JSON.stringify(forged), { qos: 1 });
    await forger.endAsync();
    await until(() => f.transport.stats.acksReceived > 0 && f.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!.status === 'sent', 'the forged ack arrived and changed nothing');
    const link = await fleet.connect('cli-2');
    const rotation = await fleet.waitForEnd(20_000);
    assert.equal(rotation.status, 'complete', rotation.error ?? '');
    assert.equal(link.stats.behindReports, 1);
    assert.ok(fleet.transport.stats.republished >= 1, 'resent on the behind report although a forged ack with that seq arrived first');
    assert.equal(fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!.attempts, 1, 'no 60 s time-out was needed');
  });

  it('an error acknowledgement naming a rotation the manager never sent never counts against a step', async () => {
    fleet = await fleets.create({ servers: 2, clients: 2, broker: 'mosquitto', policy: { ackTimeoutMs: 60_000, maxAttempts: 1 } });
    await fleet.disconnect('cli-2');
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    const f = fleet;
    await until(() => f.db.steps(id).some((r) => r.deviceId === 'cli-2' && r.step === 'P2' && r.status === 'sent'), 'P2 sent to cli-2');
    const p2 = fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!;
    const sender = await connectAsync(fleet.url, { ca: fleet.pki.ca, ...fleet.pki.device('cli-2'), rejectUnauthorized: true, clientId: 'cli-2', clean: false, protocolVersion: MQTT_PROTOCOL_VERSION, reconnectPeriod: 0 });
    const stray = {
      v: 1, kind: 'ack', deviceId: 'cli-2', rotationId: 'rot-never-sent', seq: p2.seq, step: 'P2', ok: false, at: new Date().toISOString(),
      error: { code: 'E_VERIFY_D', message: 'stray' },
      state: { storeHash: 'a'.repeat(64), rotationId: null, completed: [], trust: { current: 'b'.repeat(64), distribution: null, next: null }, identity: { active: 'd'.repeat(64), fallback: null } },
    };
    await sender.publishAsync(deviceTopic('cli-2', 'ack'), JSON.stringify(stray), { qos: 1 });
    await sender.endAsync();
    await until(() => f.transport.stats.acksReceived > 0, 'the stray ack arrived');
    await new Promise((r) => setTimeout(r, 200));
    const row = fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!;
    assert.equal(row.status, 'sent');
    assert.equal(row.errorCode, null, 'the stray error was not counted');
    assert.equal(fleet.db.rotation(id)!.status, 'running', 'with maxAttempts 1 a counted error would have stopped the rotation');
    await fleet.connect('cli-2');
    assert.equal((await fleet.waitForEnd(20_000)).status, 'complete');
  });

  it('a client gone for good (last will) stops the rotation before any P4, naming the device', async () => {
    fleet = await fleets.create({ servers: 2, clients: 2, broker: 'mosquitto', policy: { ackTimeoutMs: 250, maxAttempts: 3 } });
    await fleet.links.get('cli-2')!.close({ abrupt: true });
    fleet.links.delete('cli-2');
    const f = fleet;
    await until(() => f.transport.devices().get('cli-2')?.status === 'offline', 'the last will of cli-2');
    const rotation = await fleet.rotate(SIX_STEP);
    assert.equal(rotation.status, 'failed');
    assert.match(rotation.error ?? '', /cli-2 step P2 failed 3 times \(E_ACK_TIMEOUT/);
    for (const s of ['srv-1', 'srv-2']) assert.deepEqual(completed(fleet, s), ['P1'], `${s} never reached P4`);
  });
});
