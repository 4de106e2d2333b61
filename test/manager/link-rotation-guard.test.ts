/**
 * One rotation at a time per device: a fleet rotation or renewal refuses to
 * start while a management-root rotation is open (both use each device's
 * sequence numbers), and starts once it finished.
 */
import assert from 'node:assert/strict';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { SCHEDULES } from '../../protocol/steps.ts';

describe('manager: no fleet rotation while the management root rotates', function () {
  this.timeout(30_000);

  it('refuses with E_ROTATION_ACTIVE naming the link rotation, and starts after it finished', async () => {
    const fleet = await InProcessFleet.create({ servers: 1, clients: 1, seed: 1 });
    try {
      fleet.db.setOpenLinkRotation('link-20261204-abc123');
      await assert.rejects(fleet.orchestrator.start({ schedule: SCHEDULES['six-step']! }), (e: Error & { code?: string }) => e.code === 'E_ROTATION_ACTIVE' && /management-root rotation link-20261204-abc123/.test(e.message));
      assert.equal(fleet.db.rotations().length, 0, 'nothing was started');
      fleet.db.setOpenLinkRotation(null);
      const rot = await fleet.rotate(SCHEDULES['six-step']!);
      assert.equal(rot.status, 'complete');
    } finally {
      await fleet.close();
    }
  });
});
