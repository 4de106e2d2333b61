import { strict as assert } from 'node:assert';
import type { MqttFleet } from '../../demo/mqtt-fleet.ts';
import { abortRotation } from '../../manager/rotation/abort-rotation.ts';
import { createLogger } from '../../protocol/log.ts';
import { BATCHED, SIX_STEP, type Schedule } from '../../protocol/steps.ts';
import { mqttFleets } from '../support/mqtt-fleets.ts';

async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** What must come back byte for byte: every device's trust store and identity. */
function trustAndIdentity(f: MqttFleet): Map<string, string> {
  return new Map([...f.agents].map(([id, a]) => { const r = a.snapshot(); return [id, JSON.stringify({ trust: r.trust, identity: r.identity })]; }));
}

const quiet = createLogger({ level: 'error', sink: () => undefined });

describe('abort and rollback over Mosquitto: every device returns to exactly its old state before any server switched', function () {
  this.timeout(90_000);
  const fleets = mqttFleets();

  /** Run `schedule` with `hold` offline (so the servers' certificate step waits), abort once `ready`, bring `hold` back. */
  async function abortAt(schedule: Schedule, label: string, ready: (f: MqttFleet, id: string) => boolean, hold = 'cli-3'): Promise<void> {
    const fleet = await fleets.create({ servers: 2, clients: 3, broker: 'mosquitto', policy: { ackTimeoutMs: 60_000 } });
    const before = trustAndIdentity(fleet);
    await fleet.disconnect(hold);
    const id = await fleet.orchestrator.start({ schedule });
    await until(() => ready(fleet, id), label);
    assert.equal(abortRotation(fleet.orchestrator, 'operator:test', quiet), 'rolling-back', `${label}: rollback still possible`);
    await fleet.connect(hold);
    const end = await fleet.waitForEnd(30_000);
    assert.equal(end.status, 'rolled-back', end.error ?? '');
    const after = trustAndIdentity(fleet);
    for (const [dev, state] of before) assert.equal(after.get(dev), state, `${label}: ${dev} holds exactly its old trust store and identity`);
    for (const [dev, a] of fleet.agents) {
      const r = a.snapshot();
      assert.ok(r.rotation === null || r.rotation.id !== id || r.rotation.schedule.endsWith('-rollback'), `${dev} finished the rollback`);
    }
    // The rolled-back rotation is closed: a new one starts and completes on the same devices.
    fleet.rearm();
    const next = await fleet.rotate(schedule, 30_000);
    assert.equal(next.status, 'complete', next.error ?? '');
  }

  const steps = (f: MqttFleet, id: string, step: string, status = 'acked') => f.db.steps(id).filter((r) => r.step === step && r.status === status).length;

  it('six-step, aborted right after the start (P1/P2 in flight)', () =>
    abortAt(SIX_STEP, 'P1 and P2 sent', (f, id) => steps(f, id, 'P1', 'sent') + steps(f, id, 'P1') >= 1));
  it('six-step, aborted after every server\'s P1 and the online clients\' P2', () =>
    abortAt(SIX_STEP, 'P1 x2 and P2 x2 acknowledged', (f, id) => steps(f, id, 'P1') === 2 && steps(f, id, 'P2') === 2));
  it('six-step, aborted after the online clients\' P3 (Cn presented first), P4 held by the offline client', () =>
    abortAt(SIX_STEP, 'P3 x2 acknowledged', (f, id) => steps(f, id, 'P3') === 2));
  it('batched, aborted after B1 on the online clients (B2 held by the offline client)', () =>
    abortAt(BATCHED, 'B1 x2 acknowledged', (f, id) => steps(f, id, 'B1') === 2));

  it('after a server was sent its new certificate, abort stops where it is and says why; resume finishes', async () => {
    const fleet = await fleets.create({ servers: 2, clients: 2, broker: 'mosquitto', policy: { ackTimeoutMs: 60_000 } });
    await fleet.disconnect('srv-2');
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    await until(() => steps(fleet, id, 'P4') === 1, 'P4 of srv-1');
    assert.equal(abortRotation(fleet.orchestrator, 'operator:test', quiet), 'aborted');
    const rot = fleet.db.rotation(id)!;
    assert.equal(rot.status, 'aborted');
    assert.match(rot.error ?? '', /P4 was (applied by|sent to) srv-1.*cannot be restored/);
    assert.throws(() => fleet.orchestrator.rollback(), (err: Error & { code?: string }) => err.code === 'E_ROLLBACK_IMPOSSIBLE');
    await fleet.connect('srv-2');
    fleet.rearm();
    fleet.orchestrator.resume(id);
    assert.equal((await fleet.waitForEnd(30_000)).status, 'complete');
  });
});
