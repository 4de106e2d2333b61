/**
 * The manager's gate on optional step fields (manager/rotation/payload-gate.ts):
 * which devices would receive OldWithNew, which of them run an agent that
 * reported it does not apply it, and which never reported. Over the fleet
 * database and the orchestrator, without a broker (the MQTT path is in
 * test/mqtt/old-with-new-gate.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { ManagerError } from '../../manager/errors.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { openRotation } from '../../manager/rotation/orchestrator.ts';
import { payloadGate } from '../../manager/rotation/payload-gate.ts';
import { createLogger } from '../../protocol/log.ts';
import { SCHEDULES } from '../../protocol/steps.ts';

describe('manager: OldWithNew only to agents that apply it', function () {
  this.timeout(60_000);
  let fleet: InProcessFleet | undefined;
  afterEach(async () => { await fleet?.close(); fleet = undefined; });

  it('the database keeps what each agent reported, writes only changes, ignores unknown devices, and survives a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-accepts-'));
    try {
      fleet = await InProcessFleet.create({ servers: 1, clients: 1, dir: join(dir, 'fleet') });
      const db = fleet.db;
      assert.equal(db.deviceAccepts().size, 0, 'nothing reported yet');
      assert.equal(db.recordAccepts('srv-1', ['oldWithNew']), true);
      assert.equal(db.recordAccepts('srv-1', ['oldWithNew']), false, 'unchanged: not written again');
      assert.equal(db.recordAccepts('cli-1', []), true);
      assert.equal(db.recordAccepts('nobody', ['oldWithNew']), false, 'an unknown device is not added');
      assert.deepEqual([...db.deviceAccepts()], [['cli-1', []], ['srv-1', ['oldWithNew']]]);
      const again = new FleetDb(db.path);
      try {
        assert.deepEqual(again.deviceAccepts().get('srv-1'), ['oldWithNew']);
      } finally {
        again.close();
      }
    } finally {
      await fleet?.close();
      fleet = undefined;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('six-step and batched: a device whose agent reported without the field refuses the start (nothing made); without OldWithNew the rotation runs', async () => {
    for (const name of ['six-step', 'batched'] as const) {
      const lines: string[] = [];
      fleet = await InProcessFleet.create({ servers: 2, clients: 2, seed: 5, logger: createLogger({ level: 'warn', sink: (l) => lines.push(l) }) });
      const db = fleet.db;
      db.recordAccepts('srv-1', ['oldWithNew']);
      db.recordAccepts('srv-2', []);
      db.recordAccepts('cli-1', ['oldWithNew', 'someFutureField']);
      // cli-2 never reported.
      assert.deepEqual(payloadGate(db, db.devices(), SCHEDULES[name]!, 'oldWithNew'), { refusing: ['srv-2'], unknown: ['cli-2'] });

      const err = await fleet.rotate(SCHEDULES[name]!, { distributeOldWithNew: true }).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof ManagerError, `${name}: ${String(err)}`);
      assert.equal(err.code, 'E_AGENT_OUTDATED');
      assert.match(err.message, /\(srv-2\)/);
      assert.doesNotMatch(err.message, /cli-2/, 'a device that never reported is not refused');
      assert.equal(db.rotations().length, 0, `${name}: nothing was made`);
      assert.equal(openRotation(db), null);

      const rot = await fleet.rotate(SCHEDULES[name]!);
      assert.equal(rot.status, 'complete', rot.error ?? '');

      // The older agent upgraded; cli-2 still silent: the distribution starts, with a warning naming cli-2.
      db.recordAccepts('srv-2', ['oldWithNew']);
      fleet.rearm();
      const second = await fleet.rotate(SCHEDULES[name]!, { distributeOldWithNew: true });
      assert.equal(second.status, 'complete', second.error ?? '');
      assert.notEqual(second.id, rot.id);
      for (const agent of fleet.agents.values()) assert.ok(agent.snapshot().trust.oldWithNew, `${agent.deviceId} keeps OldWithNew`);
      const warned = lines.map((l) => JSON.parse(l) as { msg: string; deviceIds?: string[] }).find((l) => l.msg.includes('have not reported whether their agent applies OldWithNew'));
      assert.deepEqual(warned?.deviceIds, ['cli-2']);
      await fleet.close();
      fleet = undefined;
    }
  });

  it('separate roots: only the side that drops the old root is asked (a client-root rotation sends OldWithNew to printers only)', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2, seed: 9, clientRootSubject: 'CN=Console Root,O=trustroll test' });
    const db = fleet.db;
    db.recordAccepts('cli-1', []);
    db.recordAccepts('cli-2', []);
    assert.deepEqual(payloadGate(db, db.devices(), SCHEDULES['client-root']!, 'oldWithNew'), { refusing: [], unknown: ['srv-1', 'srv-2'] });
    assert.deepEqual(payloadGate(db, db.devices(), SCHEDULES['server-root']!, 'oldWithNew'), { refusing: ['cli-1', 'cli-2'], unknown: [] });
    const err = await fleet.rotate(SCHEDULES['server-root']!, { distributeOldWithNew: true }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof ManagerError && err.code === 'E_AGENT_OUTDATED', String(err));
    assert.equal(db.rotations().length, 0);
  });
});
