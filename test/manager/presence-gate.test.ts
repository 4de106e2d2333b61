/**
 * The orchestrator with a presence source (manager/rotation/presence-gate.ts), in
 * process and with a fake presence: a step due while its device is offline
 * is held (no attempt counted, nothing resent) and goes out again at once,
 * with the same sequence number, when the device is back; a device that
 * presence calls online and that does not answer still stops the rotation
 * after maxAttempts.
 */
import { strict as assert } from 'node:assert';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { buildOrchestrator } from '../../manager/manager.ts';
import type { RotationRow, StepRow } from '../../manager/fleet/fleet-db.ts';
import type { RotationPolicy } from '../../manager/rotation/orchestrator.ts';
import { dueAction, StatePresence, HELD_CODE } from '../../manager/rotation/presence-gate.ts';
import { describeRotationStatus, rotationStatus } from '../../manager/rotation/rotation-status.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import { SIX_STEP } from '../../protocol/steps.ts';

const POLICY: Partial<RotationPolicy> = { ackTimeoutMs: 50, maxAttempts: 2, sweepIntervalMs: 10, backoffBaseMs: 10, backoffMaxMs: 50 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** An in-process fleet whose manager is rebuilt with `presence` and records every command it publishes. */
async function fleetWithPresence(presence: StatePresence | undefined): Promise<{ fleet: InProcessFleet; sent: Command[]; ended: Promise<RotationRow> }> {
  const fleet = await InProcessFleet.create({ servers: 2, clients: 2 });
  fleet.orchestrator.close();
  const sent: Command[] = [];
  const inner = fleet.transport;
  let end!: (r: RotationRow) => void;
  const ended = new Promise<RotationRow>((r) => (end = r));
  fleet.orchestrator = buildOrchestrator({
    db: fleet.db, authority: fleet.ca, clock: systemClock, logger: createLogger({ level: 'error', sink: () => undefined }), policy: POLICY, presence,
    transport: { send: (cmd) => { sent.push(cmd); inner.send(cmd); }, onAck: (h) => inner.onAck(h), close: () => inner.close() },
    events: { complete: end, failed: end },
  });
  return { fleet, sent, ended };
}

const row = (fleet: InProcessFleet, id: string, deviceId: string, step: string): StepRow => fleet.db.steps(id).find((r) => r.deviceId === deviceId && r.step === step)!;
const completed = (fleet: InProcessFleet, id: string) => fleet.agents.get(id)!.snapshot().rotation?.completed ?? [];

describe('orchestrator with presence: offline devices are waited for, silent online devices still fail', function () {
  this.timeout(60_000);
  let fleet: InProcessFleet | undefined;
  afterEach(async () => { await fleet?.close(); fleet = undefined; });

  it('decides per due step: hold while offline, release when back, time out only an online device', () => {
    const presence = new StatePresence();
    presence.note({ deviceId: 'a', status: 'offline' });
    const base: StepRow = { rotationId: 'r', deviceId: 'a', step: 'P2', status: 'sent', seq: 1, attempts: 2, command: '{}', sentAt: null, ackedAt: null, dueAt: 100, errorCode: null, errorMessage: null };
    assert.equal(dueAction(base, 99, 2, presence), 'wait', 'not due yet');
    assert.equal(dueAction(base, 100, 2, presence), 'hold', 'due, offline: held even at maxAttempts');
    assert.equal(dueAction({ ...base, errorCode: HELD_CODE }, 500, 2, presence), 'wait', 'held and still offline');
    assert.equal(dueAction({ ...base, deviceId: 'b', errorCode: HELD_CODE }, 500, 2, presence), 'release', 'held, device back (or unknown after a restart)');
    assert.equal(dueAction({ ...base, deviceId: 'b' }, 100, 2, presence), 'timeout', 'online and silent at maxAttempts');
    assert.equal(dueAction({ ...base, deviceId: 'b', attempts: 1 }, 100, 2, presence), 'resend');
    assert.equal(dueAction(base, 100, 2), 'timeout', 'no presence source: as before');
    let back = '';
    presence.onOnline((id) => { back += id; });
    presence.note({ deviceId: 'b', status: 'online' });
    presence.note({ deviceId: 'a', status: 'behind' });
    assert.equal(back, 'a', 'only a device that was offline is announced as back');
    assert.equal(presence.isOffline('a'), false);
  });

  it(`holds an offline client's P2 for ackTimeout x maxAttempts x 3 without spending an attempt, resends it with the same seq the moment it is back, and completes`, async () => {
    const presence = new StatePresence();
    const f = await fleetWithPresence(presence);
    fleet = f.fleet;
    fleet.disconnect('cli-2');
    presence.note({ deviceId: 'cli-2', status: 'offline' });
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    await until(() => row(f.fleet, id, 'cli-2', 'P2').errorCode === HELD_CODE, 'cli-2 P2 held');
    await sleep(50 * 2 * 3 + 100);
    assert.equal(fleet.db.rotation(id)!.status, 'running', 'an offline device never fails the rotation');
    const held = row(fleet, id, 'cli-2', 'P2');
    assert.equal(held.attempts, 1, 'no attempt spent on the offline device');
    assert.equal(f.sent.filter((c) => c.deviceId === 'cli-2').length, 1, 'nothing resent while it is away');
    for (const s of ['srv-1', 'srv-2']) assert.deepEqual(completed(fleet, s), ['P1'], `${s} waits for cli-2's P2 before P4`);
    assert.match(describeRotationStatus(rotationStatus(fleet.db, id)), /cli-2 \(client\): P2=held:offline .*E_DEVICE_OFFLINE/);
    assert.ok(fleet.orchestrator.progress().find((p) => p.deviceId === 'srv-1')!.waitingFor.includes('cli-2:P2'), 'P4 of the servers names cli-2');

    presence.note({ deviceId: 'cli-2', status: 'online' });
    const again = f.sent.filter((c) => c.deviceId === 'cli-2');
    assert.equal(again.length, 2, 'resent at once (synchronously with the presence change), not at the next sweep');
    assert.equal(again[1]!.seq, again[0]!.seq, 'with its original sequence number');
    assert.equal(row(fleet, id, 'cli-2', 'P2').errorCode, null);
    fleet.connect('cli-2');
    const done = await f.ended;
    assert.equal(done.status, 'complete', done.error ?? '');
    assert.equal(row(fleet, id, 'cli-2', 'P2').attempts, 1, 'the return cost no attempt either');
  });

  it('a device that presence calls online and that never answers still stops the rotation after maxAttempts (E_ACK_TIMEOUT)', async () => {
    const f = await fleetWithPresence(new StatePresence());
    fleet = f.fleet;
    fleet.disconnect('cli-2');
    await fleet.orchestrator.start({ schedule: SIX_STEP });
    const r = await f.ended;
    assert.equal(r.status, 'failed');
    assert.match(r.error ?? '', /cli-2 step P2 failed 2 times \(E_ACK_TIMEOUT: .*online .*did not answer/);
  });

  it('excluding a device whose step is held clears the hold (the device view shows no stale E_DEVICE_OFFLINE) and its peers go on', async () => {
    const presence = new StatePresence();
    const f = await fleetWithPresence(presence);
    fleet = f.fleet;
    fleet.disconnect('cli-2');
    presence.note({ deviceId: 'cli-2', status: 'offline' });
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    await until(() => row(f.fleet, id, 'cli-2', 'P2').errorCode === HELD_CODE, 'cli-2 P2 held');
    fleet.orchestrator.exclude('cli-2');
    assert.deepEqual([row(fleet, id, 'cli-2', 'P2').status, row(fleet, id, 'cli-2', 'P2').errorCode], ['excluded', null]);
    assert.equal((await f.ended).status, 'complete');
  });

  it('back but silent: attempts count again from its return, and maxAttempts stops the rotation', async () => {
    const presence = new StatePresence();
    const f = await fleetWithPresence(presence);
    fleet = f.fleet;
    fleet.disconnect('cli-2');
    presence.note({ deviceId: 'cli-2', status: 'offline' });
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    await until(() => row(f.fleet, id, 'cli-2', 'P2').errorCode === HELD_CODE, 'cli-2 P2 held');
    presence.note({ deviceId: 'cli-2', status: 'online' });
    const r = await f.ended;
    assert.equal(r.status, 'failed');
    assert.match(r.error ?? '', /cli-2 step P2 failed 2 times \(E_ACK_TIMEOUT/);
    assert.equal(f.sent.filter((c) => c.deviceId === 'cli-2').length, 3, 'first send, the resend on its return (not counted), one counted resend');
  });
});
