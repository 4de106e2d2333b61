/**
 * The manager hands OldWithNew to its devices with the old-root clean-up
 * only when the rotation was started to distribute it (rotate
 * --old-with-new); the devices keep it, verified, next to R1.
 */
import assert from 'node:assert/strict';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { SCHEDULES } from '../../protocol/steps.ts';

describe('manager: distributing OldWithNew', function () {
  this.timeout(60_000);

  for (const [name, distribute] of [['six-step', true], ['batched', true], ['six-step', false]] as const) {
    it(`${name}, ${distribute ? 'distributed' : 'not distributed'}: ${distribute ? 'every device keeps the rotation\'s OldWithNew' : 'no device holds one'}`, async () => {
      const fleet = await InProcessFleet.create({ servers: 2, clients: 2, seed: 3 });
      try {
        const rot = await fleet.rotate(SCHEDULES[name]!, { distributeOldWithNew: distribute });
        assert.equal(rot.status, 'complete', rot.error ?? '');
        const own = fleet.db.rotationOldWithNew(rot.id);
        assert.ok(own, 'the CA made an OldWithNew');
        assert.equal(fleet.db.rotationPushedOldWithNew(rot.id), distribute ? own : null);
        const cleanUps = fleet.db.steps(rot.id).filter((r) => ['P5', 'P6', 'B2', 'B3'].includes(r.step));
        assert.ok(cleanUps.length > 0);
        for (const r of cleanUps) assert.equal('oldWithNew' in (JSON.parse(r.command!) as { payload: object }).payload, distribute, `${r.deviceId} ${r.step}`);
        for (const agent of fleet.agents.values()) {
          const kept = agent.snapshot().trust.oldWithNew;
          if (distribute) assert.equal(fingerprintPem(kept!), fingerprintPem(own!), `${agent.deviceId} keeps it`);
          else assert.equal(kept, undefined, `${agent.deviceId} holds none`);
        }
      } finally {
        await fleet.close();
      }
    });
  }
});
