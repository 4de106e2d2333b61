import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MqttFleet } from '../../demo/mqtt-fleet.ts';
import { ManagerService } from '../../manager/service/manager-service.ts';
import { Scheduler, schedulerConfig } from '../../manager/service/scheduler.ts';
import { serviceHost, storedSchedulerView } from '../../manager/service/scheduler-host.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { mqttFleets } from '../support/mqtt-fleets.ts';

const DAY = 86_400_000;
const MINUTE = 60_000;
/** A Tuesday, 10:00 UTC: the fleet is provisioned then (root for 10 years, device certificates for 2). */
const T0 = new Date('2027-01-05T10:00:00Z');
/** From a Tuesday 10:00 to the Saturday after it, 02:00. */
const TO_SATURDAY = 3 * DAY + 16 * 60 * MINUTE;
const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));

async function until(pred: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('scheduled rotation and renewal end to end (Mosquitto, the manager service in-process, a simulated clock)', function () {
  this.timeout(120_000);
  let service: ManagerService | null = null;
  let scheduler: Scheduler | null = null;
  // Registered before the fleet hooks, so the service leaves the broker before the fleet closes it.
  afterEach(async () => {
    await scheduler?.stop();
    await service?.close();
    scheduler = null;
    service = null;
  });
  const fleets = mqttFleets();

  /** A fleet whose manager is the service (as in `trustroll serve`) on the fleet's data folder, every device online. */
  async function servedFleet(clock: ManualClock): Promise<MqttFleet> {
    const fleet = await fleets.create({ servers: 2, clients: 3, broker: 'mosquitto', clock });
    await fleet.stopManager();
    service = await ManagerService.start({ dataDir: fleet.dir, pki: fleet.pki, brokerUrl: fleet.url, logger: fleet.logger, clock, policy: { ackTimeoutMs: 3000, sweepIntervalMs: 50 } });
    const svc = service;
    await until(() => [...fleet.agents.keys()].every((id) => svc.presence.get(id)?.online === true), 'every device online');
    return fleet;
  }
  const auditOf = (action: string) => [...service!.m.audit.all()].filter((e) => e.action === action);
  const config = (o: Parameters<typeof schedulerConfig>[0] = {}) => schedulerConfig({ rotateBeforeS: 180 * 86_400, renewBeforeS: 30 * 86_400, windows: ['Sat 01:00-05:00'], utc: true, ...o });

  it('renewal: certificates due in 23 days are skipped on Tuesday (outside the window, recorded once), renewed on Saturday 02:00 in one renewal, never twice', async () => {
    const clock = new ManualClock(T0);
    const fleet = await servedFleet(clock);
    const before = new Map(service!.m.db.devices().map((d) => [d.id, d.certificate]));
    const root = service!.m.ca.activeRoot().cert;
    scheduler = new Scheduler(config(), serviceHost(service!), { clock, logger: fleet.logger });

    clock.set(new Date(T0.getTime() + 707 * DAY)); // 101 weeks later, a Tuesday: the certificates expire in 23 days
    const [tue] = await scheduler.tick(clock.now());
    assert.deepEqual([tue?.what, tue?.outcome, tue?.code, tue?.devices], ['renew', 'skip', 'outside-window', 5]);
    clock.advance(10 * MINUTE);
    assert.equal((await scheduler.tick(clock.now()))[0]?.code, 'outside-window');
    assert.equal(auditOf('scheduler.skip').length, 1, 'an unchanged skip is recorded once');
    assert.equal(auditOf('scheduler.skip')[0]!.actor, 'scheduler');
    assert.equal(service!.m.db.rotations().length, 0);

    clock.set(new Date(T0.getTime() + 707 * DAY + TO_SATURDAY));
    const [sat] = await scheduler.tick(clock.now());
    assert.deepEqual([sat?.what, sat?.outcome, sat?.devices], ['renew', 'start', 5], JSON.stringify(sat));
    const id = sat!.rotationId!;
    const [again] = await scheduler.tick(clock.now());
    assert.deepEqual([again?.outcome, again?.code], ['skip', 'open'], 'a running renewal is not started twice');
    await until(() => service!.m.db.rotation(id)?.status === 'complete', 'the renewal completes');
    clock.advance(10 * MINUTE);
    assert.deepEqual(await scheduler.tick(clock.now()), [], 'nothing is due any more');

    const rot = service!.m.db.rotation(id)!;
    assert.equal(rot.schedule, 'renew');
    assert.equal(service!.m.ca.activeRoot().cert, root, 'no new root');
    for (const d of service!.m.db.devices()) {
      const agent = fleet.agents.get(d.id)!;
      assert.notEqual(d.certificate, before.get(d.id), `${d.id} renewed`);
      assert.equal(agent.identities()[0]!.cert, d.certificate, `${d.id} presents what the manager recorded`);
      assert.deepEqual(agent.trustAnchors().map(fingerprintPem), [fingerprintPem(root)]);
    }
    assert.equal(auditOf('scheduler.start').length, 1);
    const op = auditOf('operator.renew');
    assert.deepEqual(op.map((e) => [e.actor, e.rotationId]), [['scheduler', id]]);
    assert.deepEqual(auditOf('rotation.started').map((e) => (e.detail as { schedule: string }).schedule), ['renew']);

    // What `trustroll status` shows from the database.
    const view = storedSchedulerView(service!.m.db)!;
    assert.deepEqual(view.decisions.slice(0, 2).map((d) => [d.outcome, d.code]), [['skip', 'open'], ['start', 'due']], 'newest first; the last check had nothing to decide');
    assert.ok(Date.parse(view.renewal.dueAt!) > clock.now().getTime() + 600 * DAY, 'the next renewal falls due in about two years');
    const status = spawnSync(process.execPath, [MANAGER_BIN, 'status', '--data', fleet.dir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /complete, 5\/5 steps acknowledged/);
    assert.match(status.stdout, /schedule: not running \(as of .*\); checks "\*\/10 \* \* \* \*"; windows Sat 01:00-05:00 \(UTC\)/);
    assert.match(status.stdout, /renewal: next due 2030-.*--renew-before 30d; 0 due now/);
    assert.match(status.stdout, /last check: 2028-.*: nothing due/);
    assert.match(status.stdout, new RegExp(`last decision: .* renew skip \\(open\\): .*rotation ${id} \\(renew\\) is running`));
  });

  it('a device excluded from a root rotation and away during a later renewal is brought forward with one link (a renewal is no link)', async () => {
    const clock = new ManualClock(T0);
    const fleet = await servedFleet(clock);
    const svc = service!;
    await fleet.disconnect('cli-3');
    const rot = await svc.startRotation('six-step', 'operator:test');
    svc.exclude('cli-3', 'away', 'operator:test');
    await until(() => svc.m.db.rotation(rot.id)?.status === 'complete', 'the rotation completes without cli-3');
    clock.advance(30 * DAY);
    const renewal = await svc.startRenewal(['srv-1', 'srv-2', 'cli-1', 'cli-2'], 'operator:test');
    await until(() => svc.m.db.rotation(renewal.id)?.status === 'complete', 'the renewal completes');
    await fleet.connect('cli-3');
    const r1 = svc.m.ca.activeRoot().cert;
    await until(() => fleet.agents.get('cli-3')!.trustAnchors().map(fingerprintPem).join() === fingerprintPem(r1), 'cli-3 brought forward to R1');
    const sent = auditOf('catchup.sent');
    assert.deepEqual(sent.map((e) => [e.deviceId, (e.detail as { links: number }).links]), [['cli-3', 1]], 'one link: the rotation, not the renewal');
    await until(() => auditOf('catchup.acked').length === 1, 'the catch-up acknowledged');
    assert.equal(fleet.agents.get('cli-3')!.identities()[0]!.cert, svc.m.db.device('cli-3').certificate);
  });

  it('root rotation, cron-driven: a root expiring in 170 days is skipped on Tuesday and rotated by the cron task on Saturday 02:00', async () => {
    const clock = new ManualClock(T0);
    const fleet = await servedFleet(clock);
    const oldRoot = service!.m.ca.activeRoot().cert;
    // Checks every second, so the test sees the cron task act within moments of the simulated Saturday.
    scheduler = new Scheduler(config({ checkCron: '* * * * * *' }), serviceHost(service!), { clock, logger: fleet.logger });

    clock.set(new Date(T0.getTime() + 497 * 7 * DAY)); // a Tuesday, 171 days minus an hour before the root expires
    const [tue] = await scheduler.tick(clock.now());
    assert.deepEqual([tue?.what, tue?.outcome, tue?.code], ['rotate', 'skip', 'outside-window']);
    assert.match(tue!.reason, /in 170 days\), within --rotate-before 180d; outside the maintenance windows/);
    scheduler.start();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(service!.m.db.rotations().length, 0, 'the cron task checks but starts nothing outside the window');
    assert.equal(auditOf('scheduler.skip').length, 1, 'and records the unchanged skip once');

    clock.set(new Date(clock.now().getTime() + TO_SATURDAY));
    await until(() => service!.m.db.rotations().length === 1, 'the cron task starts the rotation');
    const rot = service!.m.db.rotations()[0]!;
    assert.equal(rot.schedule, 'six-step');
    await until(() => service!.m.db.rotation(rot.id)?.status === 'complete', 'the rotation completes', 60_000);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(service!.m.db.rotations().length, 1, 'never twice: the new root is not due');
    await scheduler.stop();

    const newRoot = service!.m.ca.activeRoot().cert;
    assert.notEqual(newRoot, oldRoot);
    for (const [id, agent] of fleet.agents) assert.deepEqual(agent.trustAnchors().map(fingerprintPem), [fingerprintPem(newRoot)], `${id} trusts only the new root`);
    assert.deepEqual(auditOf('scheduler.start').map((e) => (e.detail as { what: string }).what), ['rotate']);
    assert.deepEqual(auditOf('operator.start').map((e) => [e.actor, e.rotationId]), [['scheduler', rot.id]]);
    assert.equal(auditOf('scheduler.started').length, 1, 'the settings are recorded when the cron task starts');
    const view = scheduler.view(clock.now());
    assert.ok(Date.parse(view.rotation.dueAt!) > clock.now().getTime() + 3000 * DAY, 'the next root rotation falls due in about ten years');
    assert.equal(view.decisions.find((d) => d.outcome === 'start')?.rotationId, rot.id);
  });

  it('separate roots: at a due check the root that expires first is rotated with its own schedule, then the other at the next check, never twice', async () => {
    const clock = new ManualClock(T0);
    const fleet = await fleets.create({ servers: 2, clients: 2, broker: 'mosquitto', clock, clientRootSubject: 'CN=Printer Client Root,O=trustroll mqtt test' });
    await fleet.stopManager();
    service = await ManagerService.start({ dataDir: fleet.dir, pki: fleet.pki, brokerUrl: fleet.url, logger: fleet.logger, clock, policy: { ackTimeoutMs: 3000, sweepIntervalMs: 50 } });
    const svc = service;
    await until(() => [...fleet.agents.keys()].every((id) => svc.presence.get(id)?.online === true), 'every device online');
    const before = { server: svc.m.ca.activeRoot('server').cert, client: svc.m.ca.activeRoot('client').cert };
    scheduler = new Scheduler(config({ renewBeforeS: null }), serviceHost(svc), { clock, logger: fleet.logger });

    clock.set(new Date(T0.getTime() + 497 * 7 * DAY + TO_SATURDAY)); // Saturday 02:00, both roots expire in about 167 days
    const rotated: string[] = [];
    for (const side of ['server', 'client'] as const) {
      const [d] = await scheduler.tick(clock.now());
      assert.deepEqual([d?.what, d?.outcome], ['rotate', 'start'], `the ${side} root: ${d?.reason}`);
      assert.match(d!.reason, new RegExp(`^the ${side} root expires .*: starting a ${side}-root rotation`));
      const rot: { id: string; schedule: string } = svc.m.db.rotation(d!.rotationId!)!;
      assert.equal(rot.schedule, `${side}-root`);
      await until(() => svc.m.db.rotation(rot.id)?.status === 'complete', `the ${side}-root rotation completes`, 60_000);
      rotated.push(rot.id);
    }
    assert.deepEqual(await scheduler.tick(clock.now()), [], 'nothing is due once both roots are new');
    assert.equal(svc.m.db.rotations().length, 2);
    const after = { server: svc.m.ca.activeRoot('server').cert, client: svc.m.ca.activeRoot('client').cert };
    assert.notEqual(fingerprintPem(after.server), fingerprintPem(before.server));
    assert.notEqual(fingerprintPem(after.client), fingerprintPem(before.client));
    // Clients verify printers with the server root and printers clients with the client root: each trusts only the other side's new root.
    for (const [id, agent] of fleet.agents) {
      const peer = id.startsWith('srv-') ? after.client : after.server;
      assert.deepEqual(agent.trustAnchors().map(fingerprintPem), [fingerprintPem(peer)], `${id} trusts only the new ${id.startsWith('srv-') ? 'client' : 'server'} root`);
    }
    assert.deepEqual(auditOf('operator.start').map((e) => [e.actor, e.rotationId, (e.detail as { root?: string }).root]), [['scheduler', rotated[0], 'server'], ['scheduler', rotated[1], 'client']]);
  });
});
