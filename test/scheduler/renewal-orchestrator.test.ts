import { closeVerified } from '../support/audit.ts';
import { strict as assert } from 'node:assert';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { checkWithNode } from '../../demo/auth-matrix.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { fingerprintPem, parseCertificate, validity } from '../../protocol/pem.ts';
import { CLIENT_ROOT, SIX_STEP } from '../../protocol/steps.ts';
import { openRotation } from '../../manager/rotation/orchestrator.ts';
import { rollbackBlocker } from '../../manager/rotation/phase.ts';
import { abortRotation } from '../../manager/rotation/abort-rotation.ts';
import { createLogger } from '../../protocol/log.ts';

const DAY = 86_400_000;
const T0 = new Date('2027-03-01T08:00:00Z');
const quiet = createLogger({ level: 'error', sink: () => undefined });
const notAfter = (pem: string) => validity(parseCertificate(pem, 'certificate')).notAfter.getTime();
const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('orchestrator: certificate renewal under the active root (startRenewal)', function () {
  this.timeout(60_000);
  let fleet: InProcessFleet;
  let clock: ManualClock;
  beforeEach(() => { clock = new ManualClock(T0); });
  // Every renewal must prove its order from the audit log alone, like any rotation.
  afterEach(() => closeVerified(fleet));

  it('renews the chosen devices under the same root: one step each, no new root, new certificates recorded, peers keep authenticating', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 3, clock });
    const root = fleet.ca.activeRoot().cert;
    const before = new Map(fleet.db.devices().map((d) => [d.id, d.certificate]));
    clock.advance(300 * DAY);
    const id = await fleet.orchestrator.startRenewal({ deviceIds: ['srv-1', 'cli-2', 'cli-3', 'cli-2'] });
    assert.match(id, /^renew-2027-12-/);
    const end = await fleet.waitForEnd();
    assert.equal(end.status, 'complete', end.error ?? '');
    assert.equal(end.schedule, 'renew');
    assert.equal(fleet.ca.activeRoot().cert, root, 'the CA activated nothing');
    assert.deepEqual([end.distribution, end.newRoot], [root, root], 'the rotation row holds the active root');
    assert.deepEqual(fleet.db.steps(id).map((s) => `${s.deviceId}:${s.step}:${s.status}`).sort(), ['cli-2:RC:acked', 'cli-3:RC:acked', 'srv-1:RS:acked']);
    for (const d of fleet.db.devices()) {
      const agent = fleet.agents.get(d.id)!;
      assert.deepEqual(agent.trustAnchors().map(fingerprintPem), [fingerprintPem(root)], `${d.id} still trusts only the same root`);
      assert.equal(agent.identities().length, 1);
      assert.equal(agent.identities()[0]!.cert, d.certificate, `${d.id}: the manager records what the device presents`);
      if (['srv-1', 'cli-2', 'cli-3'].includes(d.id)) {
        assert.notEqual(d.certificate, before.get(d.id), `${d.id} renewed`);
        assert.ok(notAfter(d.certificate) >= notAfter(before.get(d.id)!) + 299 * DAY, `${d.id} lives longer`);
      } else {
        assert.equal(d.certificate, before.get(d.id), `${d.id} was not part of the renewal`);
      }
    }
    assert.deepEqual(checkWithNode(fleet.snapshot('renewed'), clock.now()).broken, [], 'every client still authenticates to every server');
    const report = fleet.verifyAudit();
    assert.equal(report.rotations, 1, 'the audit log records the renewal as a rotation (rotation.started, schedule renew)');
    assert.equal(report.sendsChecked, 3);
    // The renewal is closed: a root rotation starts and completes afterwards.
    fleet.rearm();
    assert.equal((await fleet.rotate(SIX_STEP)).status, 'complete');
  });

  it('is refused while a rotation is open, for no or unknown devices, and when the root expires before a new certificate would end', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 2, clock, caPolicy: { rootLifetimeDays: 400 } });
    await assert.rejects(fleet.orchestrator.startRenewal({ deviceIds: [] }), code('E_BAD_REQUEST'));
    await assert.rejects(fleet.orchestrator.startRenewal({ deviceIds: ['srv-1', 'printer-9'] }), code('E_DEVICE_UNKNOWN'));
    // Leaves end with the root (400 days), so a renewal cannot extend them: rotate the root instead.
    clock.advance(10 * DAY);
    await assert.rejects(fleet.orchestrator.startRenewal({ deviceIds: ['srv-1', 'cli-1'] }), (err: Error & { code?: string }) =>
      err.code === 'E_RENEWAL_NOT_LONGER' && /srv-1, cli-1 would not outlive the current one.*Rotate the root/.test(err.message));
    assert.deepEqual(fleet.db.rotations(), [], 'nothing was recorded');
    fleet.disconnect('cli-2');
    const rot = await fleet.orchestrator.start({ schedule: SIX_STEP });
    await assert.rejects(fleet.orchestrator.startRenewal({ deviceIds: ['srv-1'] }), (err: Error & { code?: string }) =>
      err.code === 'E_ROTATION_ACTIVE' && err.message.includes(`rotation ${rot} is running`));
    fleet.connect('cli-2');
    assert.equal((await fleet.waitForEnd()).status, 'complete');
  });

  it('a root rotation waits for an open renewal; abort stops where it is (no rollback); resume finishes it', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2, clock });
    clock.advance(30 * DAY);
    fleet.disconnect('cli-2');
    const id = await fleet.orchestrator.startRenewal({ deviceIds: ['srv-1', 'srv-2', 'cli-1', 'cli-2'] });
    await until(() => fleet.db.steps(id).filter((s) => s.status === 'acked').length === 3, 'three devices renewed');
    await assert.rejects(fleet.orchestrator.start({ schedule: SIX_STEP }), code('E_ROTATION_ACTIVE'));
    const rot = fleet.db.rotation(id)!;
    assert.equal(rollbackBlocker(rot, fleet.db.steps(id)), 'a renewal has no rollback; every device keeps a valid certificate');
    assert.equal(abortRotation(fleet.orchestrator, 'operator:test', quiet), 'aborted');
    assert.match(fleet.db.rotation(id)!.error ?? '', /a renewal has no rollback; every device keeps a valid certificate/);
    assert.equal(openRotation(fleet.db)?.id, id, 'an aborted renewal part-way stays open');
    assert.deepEqual(checkWithNode(fleet.snapshot('renewal stopped'), clock.now()).broken, [], 'a stopped renewal does no harm');
    fleet.connect('cli-2');
    fleet.orchestrator.resume(id);
    assert.equal((await fleet.waitForEnd()).status, 'complete');
    assert.equal(fleet.agents.get('cli-2')!.identities()[0]!.cert, fleet.db.device('cli-2').certificate);
  });

  it('an excluded device keeps its old certificate on record; the others are renewed', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 2, clock });
    const old = fleet.db.device('cli-2').certificate;
    clock.advance(30 * DAY);
    fleet.disconnect('cli-2');
    const id = await fleet.orchestrator.startRenewal({ deviceIds: ['srv-1', 'cli-1', 'cli-2'] });
    await until(() => fleet.db.steps(id).filter((s) => s.status === 'acked').length === 2, 'the online devices renewed');
    assert.deepEqual(fleet.orchestrator.exclude('cli-2'), ['RC']);
    assert.equal((await fleet.waitForEnd()).status, 'complete');
    assert.equal(fleet.db.device('cli-2').certificate, old);
    assert.equal(fleet.agents.get('cli-2')!.identities()[0]!.cert, old, 'cli-2 still presents its old certificate');
    assert.equal(fleet.agents.get('cli-1')!.identities()[0]!.cert, fleet.db.device('cli-1').certificate);
  });

  it('separate roots: each device is renewed under the root of its side; no root changes; every client still authenticates to every server; a root rotation follows', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2, clock, clientRootSubject: 'CN=Console Root,O=trustroll test' });
    const roots = { server: fingerprintPem(fleet.ca.activeRoot('server').cert), client: fingerprintPem(fleet.ca.activeRoot('client').cert) };
    const before = new Map(fleet.db.devices().map((d) => [d.id, d.certificate]));
    clock.advance(300 * DAY);
    const id = await fleet.orchestrator.startRenewal({ deviceIds: ['srv-1', 'cli-1'] });
    const end = await fleet.waitForEnd();
    assert.equal(end.status, 'complete', end.error ?? '');
    assert.deepEqual([fingerprintPem(fleet.ca.activeRoot('server').cert), fingerprintPem(fleet.ca.activeRoot('client').cert)], [roots.server, roots.client], 'the CA activated nothing');
    for (const d of fleet.db.devices()) {
      const agent = fleet.agents.get(d.id)!;
      const own = d.role === 'server' ? 'server' : 'client';
      assert.equal(agent.identities()[0]!.cert, d.certificate, `${d.id}: the manager records what the device presents`);
      assert.equal(fingerprintPem(agent.snapshot().issuer!.current), roots[own], `${d.id} keeps its issuer root`);
      assert.ok(parseCertificate(d.certificate, 'cert').verify(parseCertificate(fleet.ca.activeRoot(own).cert, 'root').publicKey), `${d.id}'s certificate is signed by the ${own} root`);
      if (['srv-1', 'cli-1'].includes(d.id)) assert.ok(notAfter(d.certificate) >= notAfter(before.get(d.id)!) + 299 * DAY, `${d.id} renewed and lives longer`);
      else assert.equal(d.certificate, before.get(d.id), `${d.id} was not part of the renewal`);
    }
    assert.deepEqual(checkWithNode(fleet.snapshot('renewed'), clock.now()).broken, [], 'every client still authenticates to every server');
    assert.deepEqual(fleet.db.steps(id).map((s) => `${s.deviceId}:${s.step}:${s.status}`).sort(), ['cli-1:RC:acked', 'srv-1:RS:acked']);
    fleet.rearm();
    assert.equal((await fleet.rotate(CLIENT_ROOT)).status, 'complete', 'the client root rotates after the renewal');
  });
});
