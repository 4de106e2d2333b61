import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { verifyAudit } from '../../manager/audit/audit-check.ts';
import { AuditLog } from '../../manager/audit/audit-log.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import type { CertificatesView, DeviceDetail, FleetPage, RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

describe('separate roots: devices that miss root rotations are brought forward through both roots\' chains (agent processes, Mosquitto, trustroll serve)', function () {
  this.timeout(240_000);
  let fleet: ServiceFleet;
  before(async () => { fleet = await ServiceFleet.create({ servers: 2, clients: 3, ackTimeoutMs: 2000, separateRoots: true }); });
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
  const activeRoot = async (side: 'client' | 'server') => (await fleet.api<CertificatesView>('/api/certificates')).body.roots.find((r) => r.kind === 'active-root' && r.side === side)!.sha256;

  it('console-2 sleeps through a client-root and a server-root rotation, console-3 through the server-root one; both come back with one catch-up each; no client handshake fails once brought forward', async () => {
    await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet')).body.counts.online === 5);
    for (const d of (await fleet.api<FleetPage>('/api/fleet')).body.devices) assert.ok(d.accepts?.includes('issuerChain'), `${d.id} applies a two-chain catch-up`);
    const serverRoot0 = await activeRoot('server');
    await fleet.killDevice('console-2');
    const first = await rotate('client-root');
    assert.ok(first.excluded > 0, 'console-2 was excluded from the client-root rotation');
    await fleet.killDevice('console-3');
    const second = await rotate('server-root');
    assert.ok(second.excluded > 0, 'console-3 (and console-2) excluded from the server-root rotation');
    const serverRoot1 = await activeRoot('server');
    assert.notEqual(serverRoot1, serverRoot0);

    for (const id of ['console-3', 'console-2']) {
      await fleet.restartDevice(id);
      await fleet.until(`${id} brought forward: it verifies printers with the new server root only`, async () => {
        const d = await device(id);
        return d.online && d.trusts.length === 1 && d.trusts[0]!.sha256 === serverRoot1 ? d : null;
      }, 60_000);
    }
    const db = new FleetDb(join(fleet.dataDir, 'manager.db'));
    try {
      const entries = [...new AuditLog(db).all()];
      const sent = (id: string) => entries.find((e) => e.action === 'catchup.sent' && e.deviceId === id)!.detail as { peerLinks: number; issuerLinks: number };
      assert.deepEqual(entries.filter((e) => e.action === 'catchup.acked').map((e) => e.deviceId).sort(), ['console-2', 'console-3']);
      assert.deepEqual([sent('console-2').peerLinks, sent('console-2').issuerLinks], [1, 1], 'console-2 missed one rotation of each root');
      assert.deepEqual([sent('console-3').peerLinks, sent('console-3').issuerLinks], [1, 0], 'console-3 missed only the server root\'s');
      // The manager recorded each new certificate: console-2's is under the new client root, console-3's under the one it had.
      const report = verifyAudit(entries);
      assert.equal(report.chain, null);
      assert.deepEqual(report.violations, []);
    } finally {
      db.close();
    }
    // console-2's certificate was under the old client root, which the printers dropped: it fails until its catch-up lands,
    // then never again; console-3's certificate never changed; console-1 never slept and never failed.
    const before = new Map((await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices.map((d) => [d.id, d.tls]));
    await fleet.until('the brought-forward clients handshake again', async () => {
      const lines = (await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices;
      return lines.filter((d) => ['console-2', 'console-3'].includes(d.id)).every((d) => (d.tls?.ok ?? 0) > (before.get(d.id)?.ok ?? 0) + 2);
    }, 90_000);
    for (const d of (await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices) {
      if (d.id === 'console-1') assert.equal(d.tls?.failed ?? 0, 0, 'console-1 never failed a handshake');
      else assert.equal(d.tls?.failed ?? 0, before.get(d.id)?.failed ?? 0, `${d.id}: no failed handshake after it was brought forward`);
    }
    // And the next rotation of either root includes them again.
    const third = await rotate('client-root');
    assert.equal(third.excluded, 0);
  });
});
