import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditPage, FleetPage, RotationDetail, RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));

/** What `trustroll-agent status` says the device trusts and presents (fingerprints per slot). */
function trustAndIdentity(fleet: ServiceFleet, id: string): string {
  const r = spawnSync(process.execPath, [AGENT, 'status', '--store', join(fleet.dir, 'devices', id, 'trust-store.db'), '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { trust: { slot: string; sha256: string }[]; identities: { slot: string; sha256: string }[] };
  return JSON.stringify({ trust: s.trust.map((c) => [c.slot, c.sha256]), identities: s.identities.map((c) => [c.slot, c.sha256]) });
}

describe('abort with rollback through trustroll serve: agent processes over Mosquitto with continuous mutual TLS', function () {
  this.timeout(240_000);
  let fleet: ServiceFleet;
  before(async () => { fleet = await ServiceFleet.create({ servers: 2, clients: 3, ackTimeoutMs: 2000 }); });
  after(async () => { await fleet?.close(); });

  for (const [schedule, held] of [['six-step', 'P3'], ['batched', 'B1']] as const) {
    it(`${schedule}: aborted after ${held} with a client away, every device returns byte for byte to its old trust store and identity; no client handshake fails`, async () => {
      await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet')).body.counts.online === 5);
      const ids = [...fleet.devices.keys()];
      const before = new Map(ids.map((id) => [id, trustAndIdentity(fleet, id)]));
      const failedBefore = new Map((await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices.map((d) => [d.id, d.tls?.failed ?? 0]));
      await fleet.killDevice('console-3');
      await fleet.until('console-3 offline', async () => (await fleet.api<FleetPage>('/api/fleet?presence=offline')).body.devices.some((d) => d.id === 'console-3'));
      const start = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule } });
      assert.equal(start.status, 201, start.text);
      const id = start.body.id;
      await fleet.until(`${held} on the online clients`, async () => {
        const d = (await fleet.api<RotationDetail>(`/api/rotations/${id}`)).body;
        return d.steps.find((s) => s.step === held)!.acked === 2 ? d : null;
      });
      const summary = (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body;
      assert.equal(summary.rollback.possible, true, summary.rollback.reason ?? '');
      const viewer = await fleet.api(`/api/rotations/${id}/abort`, { as: 'viewer', body: {} });
      assert.equal(viewer.status, 403);
      const aborted = await fleet.api<RotationSummary>(`/api/rotations/${id}/abort`, { body: {} });
      assert.equal(aborted.body.status, 'rolling-back', aborted.text);
      await fleet.restartDevice('console-3');
      await fleet.until('rolled back', async () => (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.status === 'rolled-back', 120_000);
      for (const dev of ids) assert.equal(trustAndIdentity(fleet, dev), before.get(dev), `${dev}: trust store and identity as before the rotation`);
      for (const d of (await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices) {
        if (d.id !== 'console-3') assert.equal(d.tls?.failed ?? 0, failedBefore.get(d.id), `${d.id}: no handshake failed during the rotation and its rollback`);
      }
    });
  }

  it('after a server was sent its new certificate, abort stops where it is and the API says why; resume completes', async () => {
    await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet')).body.counts.online === 5);
    await fleet.killDevice('printer-2');
    const id = (await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'six-step' } })).body.id;
    await fleet.until('P4 of printer-1', async () => (await fleet.api<RotationDetail>(`/api/rotations/${id}`)).body.steps.find((s) => s.step === 'P4')!.acked === 1);
    const aborted = await fleet.api<RotationSummary>(`/api/rotations/${id}/abort`, { body: {} });
    assert.equal(aborted.body.status, 'aborted');
    assert.equal(aborted.body.rollback.possible, false);
    assert.match(aborted.body.rollback.reason ?? '', /P4 was (applied by|sent to) printer-1/);
    // The code reaches the API answer, the rotation's recorded error and the audit entry.
    assert.equal(aborted.body.errorCode, 'E_ROLLBACK_IMPOSSIBLE', aborted.text);
    assert.match(aborted.body.error ?? '', /^E_ROLLBACK_IMPOSSIBLE: aborted by operator:alice; .*P4/);
    assert.equal((await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.errorCode, 'E_ROLLBACK_IMPOSSIBLE');
    const entries = (await fleet.api<AuditPage>(`/api/audit?rotation=${id}&order=desc&limit=50`)).body.entries;
    const stopped = entries.find((e) => e.action === 'rotation.aborted');
    assert.equal(stopped?.code, 'E_ROLLBACK_IMPOSSIBLE', JSON.stringify(stopped));
    assert.match(String((stopped!.detail as { reason: string }).reason), /P4 was (applied by|sent to) printer-1/);
    await fleet.restartDevice('printer-2');
    await fleet.api(`/api/rotations/${id}/resume`, { body: {} });
    await fleet.until('complete', async () => (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.status === 'complete', 120_000);
    assert.equal((await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.errorCode, null, 'resumed to completion: no error any more');
  });
});
