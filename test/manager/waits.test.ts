import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { computeWaits } from '../../manager/service/rotation-view.ts';
import { Presence } from '../../manager/service/presence.ts';
import { ServiceDb } from '../../manager/service/service-db.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { SIX_STEP } from '../../protocol/steps.ts';

describe('who waits for whom (rotation view)', () => {
  let dir: string;
  let db: FleetDb;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-waits-'));
    db = new FleetDb(join(dir, 'manager.db'));
    // 300 printers have done P1; their P4 waits for P2 of the one client, which has not acknowledged it.
    const servers = Array.from({ length: 300 }, (_, i) => `printer-${i + 1}`);
    for (const id of [...servers, 'console-1']) db.addDevice({ id, role: id === 'console-1' ? 'client' : 'server', commonName: id, spki: Buffer.from(id), certificate: 'unused' });
    const steps = [...servers.flatMap((id) => ['P1', 'P4', 'P5'].map((step) => ({ deviceId: id, step }))), ...['P2', 'P3', 'P6'].map((step) => ({ deviceId: 'console-1', step }))];
    const at = '2026-12-01T00:00:00.000Z';
    db.insertRotation({ id: 'rot-1', schedule: 'six-step', status: 'running', unsafe: false, distribution: 'unused', newRoot: 'unused', createdAt: at, updatedAt: at, error: null }, new Map(), steps);
    for (const r of db.steps('rot-1')) if (r.step === 'P1') db.updateStep({ ...r, status: 'acked', ackedAt: at });
  });
  after(() => { db.close(); rmSync(dir, { recursive: true, force: true }); });

  it('lists at most 200 waits for the fleet, but answers for any one device, however far down the fleet it is', () => {
    const presence = new Presence(new ServiceDb(db), new ManualClock(new Date('2026-12-01T00:00:00Z')), () => undefined);
    const rows = db.steps('rot-1');
    const all = computeWaits(db, SIX_STEP, rows, presence);
    assert.equal(all.waitsTotal, 300);
    assert.equal(all.waits.length, 200);
    assert.deepEqual(all.blockers.map((b) => [b.deviceId, b.step, b.blocks]), [['console-1', 'P2', 300]]);
    const one = computeWaits(db, SIX_STEP, rows, presence, { deviceId: 'printer-300' });
    assert.equal(one.waits.length, 1);
    assert.equal(one.waits[0]!.deviceId, 'printer-300');
    assert.equal(one.waits[0]!.step, 'P4');
    assert.deepEqual(one.waits[0]!.waitingFor.map((w) => `${w.step} of ${w.deviceId}`), ['P2 of console-1']);
  });
});
