import { closeVerified } from '../support/audit.ts';
import { strict as assert } from 'node:assert';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { checkWithNode } from '../../demo/auth-matrix.ts';
import { BATCHED, SIX_STEP } from '../../protocol/steps.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { ManagerError } from '../../manager/errors.ts';

/** Wait until `pred` holds, polling. */
async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const completed = (fleet: InProcessFleet, id: string) => fleet.agents.get(id)!.snapshot().rotation?.completed ?? [];

describe('orchestrator: ordering, failures, restarts', function () {
  this.timeout(60_000);
  let fleet: InProcessFleet;
  // Every rotation of these tests must also prove its order from the audit log alone.
  afterEach(() => closeVerified(fleet));

  it('a client offline during P2 gets its commands on reconnect; the servers\' P4 waits for it', async () => {
    fleet = await InProcessFleet.create({ servers: 3, clients: 4, maxLatencyMs: 2 });
    fleet.disconnect('cli-2');
    await fleet.orchestrator.start({ schedule: SIX_STEP });
    await until(() => ['srv-1', 'srv-2', 'srv-3'].every((s) => completed(fleet, s).includes('P1')) && ['cli-1', 'cli-3', 'cli-4'].every((c) => completed(fleet, c).includes('P2')));
    await new Promise((r) => setTimeout(r, 100));
    for (const s of ['srv-1', 'srv-2', 'srv-3']) assert.deepEqual(completed(fleet, s), ['P1'], `${s} must not get P4 while cli-2 lacks D`);
    const waiting = fleet.orchestrator.progress().find((p) => p.deviceId === 'srv-1')!;
    assert.ok(waiting.waitingFor.includes('cli-2:P2'), `progress names the device holding P4 up: ${waiting.waitingFor}`);
    fleet.connect('cli-2');
    const rotation = await fleet.waitForEnd();
    assert.equal(rotation.status, 'complete');
  });

  it('a client gone for good stops the rotation safely before any P4, naming the device', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 3, policy: { ackTimeoutMs: 60, maxAttempts: 3 } });
    fleet.disconnect('cli-3');
    const rotation = await fleet.rotate(SIX_STEP);
    assert.equal(rotation.status, 'failed');
    assert.match(rotation.error ?? '', /cli-3 step P2 failed 3 times \(E_ACK_TIMEOUT/);
    for (const s of ['srv-1', 'srv-2']) assert.deepEqual(completed(fleet, s), ['P1']);
    assert.deepEqual(checkWithNode(fleet.snapshot('stopped'), new Date()).broken, [], 'a stopped rotation does no harm');
    // The cause is fixed (device back online): resume finishes the rotation.
    fleet.rearm();
    fleet.connect('cli-3');
    fleet.orchestrator.resume(rotation.id);
    assert.equal((await fleet.waitForEnd()).status, 'complete');
  });

  it('a failing device is retried with back-off and the rotation completes once the fault clears', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 2, policy: { maxAttempts: 4 } });
    const store = fleet.stores.get('cli-1')!;
    const save = store.save.bind(store);
    let failures = 2;
    store.save = async (...args) => {
      if (failures-- > 0) throw Object.assign(new Error('disk full'), {});
      return save(...args);
    };
    const rotation = await fleet.rotate(SIX_STEP);
    assert.equal(rotation.status, 'complete');
    const row = fleet.db.steps(rotation.id).find((r) => r.deviceId === 'cli-1' && r.step === 'P2')!;
    assert.equal(row.attempts, 3, 'two failed attempts, then success');
  });

  it('a device that keeps rejecting a step stops the rotation with its error code', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 2, policy: { maxAttempts: 2 } });
    // The client's trust store is swapped for another fleet's root: D will never verify.
    const other = await InProcessFleet.create({ servers: 1, clients: 1 });
    const store = fleet.stores.get('cli-2')!;
    const foreign = other.agents.get('cli-1')!.snapshot();
    const rec = fleet.agents.get('cli-2')!.snapshot();
    rec.trust = foreign.trust;
    await store.save(rec);
    await other.close();
    fleet.agents.delete('cli-2');
    const { Agent } = await import('../../agent/agent.ts');
    const { createLogger } = await import('../../protocol/log.ts');
    fleet.agents.set('cli-2', await Agent.open({ deviceId: 'cli-2', role: 'client', store, keys: fleet.keys.get('cli-2')!, clock: fleet.clock, logger: createLogger({ level: 'error' }) }));
    fleet.connect('cli-2');
    const rotation = await fleet.rotate(SIX_STEP);
    assert.equal(rotation.status, 'failed');
    assert.match(rotation.error ?? '', /cli-2 step P2 failed 2 times \(E_VERIFY_D/);
    for (const s of fleet.agents.values()) if (s.role === 'server') assert.ok(!(s.snapshot().rotation?.completed ?? []).includes('P4'));
  });

  for (const schedule of [SIX_STEP, BATCHED]) {
    it(`${schedule.name}: a manager restart mid-rotation resumes from SQLite without re-sending acknowledged steps`, async () => {
      fleet = await InProcessFleet.create({ servers: 3, clients: 5, maxLatencyMs: 3 });
      fleet.disconnect('cli-4');
      await fleet.orchestrator.start({ schedule });
      await until(() => fleet.orchestrator.progress().filter((p) => Object.values(p.steps).includes('acked')).length >= 4);
      const ackedBefore = fleet.db.steps(fleet.orchestrator.current()!.id).filter((r) => r.status === 'acked');
      await fleet.restartManager();
      const sent: Command[] = [];
      const send = fleet.transport.send.bind(fleet.transport);
      fleet.transport.send = (cmd) => { sent.push(cmd); send(cmd); };
      fleet.connect('cli-4');
      const rotation = await fleet.waitForEnd();
      assert.equal(rotation.status, 'complete');
      for (const a of ackedBefore) {
        assert.ok(!sent.some((c) => c.deviceId === a.deviceId && c.step === a.step), `${a.deviceId}:${a.step} was acknowledged before the restart and must not be re-sent`);
      }
      for (const [id, store] of fleet.stores) {
        const steps = (await store.history(20)).map((h) => h.step);
        assert.equal(new Set(steps).size, steps.length, `${id} applied each step once: ${steps}`);
      }
    });
  }

  it('lossy, duplicating delivery (1, 2, 3, 2, 3, 4): no step applied twice or out of order', async () => {
    fleet = await InProcessFleet.create({ servers: 3, clients: 5, maxLatencyMs: 5, dropRate: 0.2, duplicateRate: 0.4, seed: 42, policy: { ackTimeoutMs: 50 } });
    const rotation = await fleet.rotate(SIX_STEP);
    assert.equal(rotation.status, 'complete');
    assert.ok(fleet.transport.stats.duplicated > 0 && fleet.transport.stats.dropped > 0, JSON.stringify(fleet.transport.stats));
    for (const [id, store] of fleet.stores) {
      const h = await store.history(20);
      const role = fleet.agents.get(id)!.role;
      assert.deepEqual(h.map((e) => e.step), role === 'server' ? ['P1', 'P4', 'P5'] : ['P2', 'P3', 'P6'], id);
      assert.deepEqual(h.map((e) => e.seq), [1, 2, 3], `${id}: sequence numbers in order`);
    }
  });

  it('with a peering graph, a server\'s P4 waits only for the clients that talk to it', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 3, maxLatencyMs: 2 });
    fleet.db.setPeering([{ server: 'srv-1', client: 'cli-1' }, { server: 'srv-1', client: 'cli-2' }, { server: 'srv-2', client: 'cli-3' }]);
    fleet.disconnect('cli-3');
    await fleet.orchestrator.start({ schedule: SIX_STEP });
    await until(() => completed(fleet, 'srv-1').includes('P5'));
    assert.deepEqual(completed(fleet, 'srv-2'), ['P1'], 'srv-2 waits for its own client cli-3');
    const p = fleet.orchestrator.progress().find((x) => x.deviceId === 'srv-2')!;
    assert.deepEqual(p.waitingFor, ['cli-3:P2']);
    assert.deepEqual(checkWithNode(fleet.snapshot('partial'), new Date()).broken.filter((b) => /cli-[12] -> srv-1|cli-3 -> srv-2/.test(b)), [], 'peers that talk to each other still authenticate');
    fleet.connect('cli-3');
    assert.equal((await fleet.waitForEnd()).status, 'complete');
  });

  it('a forged acknowledgement (unsigned, or signed by another key) is ignored: servers never switch early', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2, maxLatencyMs: 1 });
    fleet.disconnect('cli-2');
    const id = await fleet.orchestrator.start({ schedule: SIX_STEP });
    await until(() => fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!.status === 'sent'
      && ['srv-1', 'srv-2'].every((s) => completed(fleet, s).includes('P1')));
    const row = fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!;
    const genuine = fleet.agents.get('cli-1')!.status();
    const forged = {
      v: 1, kind: 'ack', deviceId: 'cli-2', rotationId: id, seq: row.seq, step: 'P2', ok: true, at: new Date().toISOString(),
      state: { storeHash: genuine.storeHash, rotationId: id, completed: ['P2'], trust: genuine.trust, identity: genuine.identity },
    };
    fleet.transport.injectAck(JSON.stringify(forged));
    const { generateKeyPairSync, sign } = await import('node:crypto');
    const { ackSignedBytes } = await import('../../protocol/ack-signature.ts');
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signed = { ...forged, sig: { alg: 'ES256', value: sign('sha256', ackSignedBytes(forged as never), attacker.privateKey).toString('base64') } };
    fleet.transport.injectAck(JSON.stringify(signed));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fleet.db.steps(id).find((r) => r.deviceId === 'cli-2' && r.step === 'P2')!.status, 'sent', 'the forged ack did not count');
    for (const s of ['srv-1', 'srv-2']) assert.deepEqual(completed(fleet, s), ['P1'], `${s} must not reach P4 on a forged ack`);
    fleet.connect('cli-2');
    assert.equal((await fleet.waitForEnd()).status, 'complete', 'the genuine, signed acks complete the rotation');
  });

  it('only one rotation runs at a time (E_ROTATION_ACTIVE)', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 1 });
    fleet.disconnect('cli-1');
    await fleet.orchestrator.start({ schedule: SIX_STEP });
    await assert.rejects(fleet.orchestrator.start({ schedule: SIX_STEP }), (e: unknown) => e instanceof ManagerError && e.code === 'E_ROTATION_ACTIVE');
  });

  it('refuses an unsafe schedule unless explicitly marked unsafe (E_SCHEDULE_ORDER)', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 1 });
    const { NAIVE } = await import('../../protocol/steps.ts');
    await assert.rejects(fleet.orchestrator.start({ schedule: NAIVE }), /E_SCHEDULE_ORDER/);
    assert.equal(fleet.db.rotations().length, 0, 'nothing was created');
  });
});
