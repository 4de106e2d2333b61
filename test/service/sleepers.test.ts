import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { verifyAudit } from '../../manager/audit/audit-check.ts';
import { AuditLog } from '../../manager/audit/audit-log.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import type { DeviceDetail, FleetPage, RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

describe('devices that miss rotations: excluded after a time offline, reported, and brought forward through a verified chain (agent processes, Mosquitto, trustroll serve)', function () {
  this.timeout(240_000);
  let fleet: ServiceFleet;
  before(async () => { fleet = await ServiceFleet.create({ servers: 2, clients: 3, ackTimeoutMs: 2000 }); });
  after(async () => { await fleet?.close(); });

  const rotate = async (schedule: string): Promise<RotationSummary> => {
    const start = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule, excludeOfflineAfterS: 2 } });
    assert.equal(start.status, 201, start.text);
    return fleet.until(`rotation ${start.body.id} complete`, async () => {
      const r = (await fleet.api<RotationSummary>(`/api/rotations/${start.body.id}`)).body;
      assert.notEqual(r.status, 'failed', r.error ?? '');
      return r.status === 'complete' ? r : null;
    }, 120_000);
  };
  const device = async (id: string) => (await fleet.api<DeviceDetail>(`/api/devices/${id}`)).body.device;

  it('console-3 sleeps through one rotation and console-2 through two; both come back and are brought forward; no client handshake failed', async () => {
    await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet')).body.counts.online === 5);
    await fleet.killDevice('console-2');
    const first = await rotate('six-step');
    assert.ok(first.excluded > 0, 'console-2 was excluded by the offline policy');
    await fleet.killDevice('console-3');
    const second = await rotate('batched');
    assert.ok(second.excluded > 0, 'console-3 (and console-2) excluded in the second rotation');
    const reported = (await fleet.api<FleetPage>('/api/fleet?presence=offline')).body.devices.map((d) => d.id).sort();
    assert.deepEqual(reported, ['console-2', 'console-3'], 'both sleepers are reported offline');

    for (const id of ['console-3', 'console-2']) {
      await fleet.restartDevice(id);
      await fleet.until(`${id} brought forward to R1 of the latest rotation`, async () => {
        const d = await device(id);
        return d.online && d.trusts.length === 1 && d.trusts[0]!.label === 'R1' ? d : null;
      }, 60_000);
    }
    const db = new FleetDb(join(fleet.dataDir, 'manager.db'));
    try {
      const log = new AuditLog(db);
      const entries = [...log.all()];
      const acked = entries.filter((e) => e.action === 'catchup.acked').map((e) => [e.deviceId, (entries.find((s) => s.action === 'catchup.sent' && s.rotationId === e.rotationId)!.detail as { links: number }).links]);
      assert.deepEqual(new Map(acked as [string, number][]), new Map([['console-3', 1], ['console-2', 2]]), 'one link for one missed rotation, two for two');
      assert.ok(entries.some((e) => e.action === 'policy.exclude' && e.deviceId === 'console-2' && e.actor.startsWith('policy:')), 'the policy exclusion is recorded with who did it');
      const report = verifyAudit(entries);
      assert.equal(report.chain, null);
      assert.deepEqual(report.violations, []);
    } finally {
      db.close();
    }
    // A sleeper cannot authenticate until it is brought forward (that is what it missed); from then on none of its handshakes fails,
    // and the client that never slept had no failure at all.
    const before = new Map((await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices.map((d) => [d.id, d.tls]));
    await fleet.until('the brought-forward clients handshake again', async () => {
      const lines = (await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices;
      return lines.filter((d) => ['console-2', 'console-3'].includes(d.id)).every((d) => (d.tls?.ok ?? 0) > (before.get(d.id)?.ok ?? 0) + 2);
    }, 90_000);
    for (const d of (await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices) {
      if (d.id === 'console-1') assert.equal(d.tls?.failed ?? 0, 0, 'console-1 never failed a handshake');
      else assert.equal(d.tls?.failed ?? 0, before.get(d.id)?.failed ?? 0, `${d.id}: no failed handshake after it was brought forward`);
    }
    // And the next rotation includes them again.
    const third = await rotate('six-step');
    assert.equal(third.excluded, 0);
  });
});
