import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { verifyAudit } from '../../manager/audit/audit-check.ts';
import { AuditLog } from '../../manager/audit/audit-log.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import type { AuditPage, RotationSummary, SchedulerView } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

const DAY = 86_400_000;
const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

describe('trustroll serve with a scheduler: GET /api/schedule, POST /api/renewals, trustroll status (agent processes, embedded broker)', function () {
  this.timeout(180_000);
  let fleet: ServiceFleet;
  let browser: Browser;
  before(async () => {
    [fleet, browser] = await Promise.all([
      ServiceFleet.create({
        servers: 1, clients: 2, broker: 'embedded',
        // Checks once a year (never during the test): the decisions themselves are tested with a simulated clock.
        serveArgs: ['--rotate-before', '180d', '--renew-before', '30d', '--window', 'Sat 01:00-05:00', '--window', 'Sun 01:00-03:00', '--window-utc', '--check-cron', '0 0 1 1 *', '--rotate-schedule', 'batched'],
      }),
      chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] }),
    ]);
  });
  after(async () => {
    await browser?.close();
    await fleet?.close();
  });

  const waitFor = (id: string) => fleet.until(`renewal ${id} complete`, async () => {
    const r = (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body;
    assert.notEqual(r.status, 'failed', r.error ?? '');
    return r.status === 'complete' ? r : null;
  });

  it('shows the settings, when the root rotation and the next renewal fall due, and the next check, to any reader', async () => {
    const root = new X509Certificate(readFileSync(join(fleet.dataDir, 'ca', 'ca.json'), 'utf8').match(/-----BEGIN CERTIFICATE-----[^"]+/)![0]!.replace(/\\n/g, '\n'));
    for (const as of ['viewer', 'token'] as const) {
      const r = await fleet.api<SchedulerView>('/api/schedule', { as });
      assert.equal(r.status, 200, r.text);
      const v = r.body;
      assert.equal(v.enabled, true);
      assert.deepEqual(v.config, { checkCron: '0 0 1 1 *', rotateBefore: '180d', renewBefore: '30d', windows: ['Sat 01:00-05:00', 'Sun 01:00-03:00'], timeZone: 'UTC', rotateSchedule: 'batched', excludeOfflineAfter: null });
      assert.equal(v.nextCheck, `${new Date().getUTCFullYear() + 1}-01-01T00:00:00.000Z`);
      assert.equal(v.rotation.rootNotAfter, new Date(root.validTo).toISOString());
      assert.equal(v.rotation.dueAt, new Date(Date.parse(root.validTo) - 180 * DAY).toISOString());
      assert.ok(Date.parse(v.renewal.dueAt!) > Date.now() + 690 * DAY, 'device certificates are new: renewal falls due in about two years');
      assert.equal(v.renewal.dueNow, 0);
      assert.equal(v.open, null);
      assert.deepEqual(v.decisions, []);
      assert.equal(typeof v.window.open, 'boolean');
    }
    assert.equal((await fleet.api('/api/schedule', { as: 'none' })).status, 401);
    const status = spawnSync(process.execPath, [MANAGER_BIN, 'status', '--data', fleet.dataDir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /^no rotation has been started yet\nschedule: active; checks "0 0 1 1 \*", next \d{4}-01-01T00:00:00.000Z; windows Sat 01:00-05:00; Sun 01:00-03:00 \(UTC\)/);
    assert.match(status.stdout, /root rotation: due .*--rotate-before 180d, batched/);
    assert.match(status.stdout, /last check: none yet/);
  });

  it('POST /api/renewals: admins only, a checked body, unknown devices named; renews by id or by expiry, recorded with who', async () => {
    assert.equal((await fleet.api('/api/renewals', { as: 'viewer', body: { deviceIds: ['printer-1'] } })).status, 403);
    for (const body of [{}, { deviceIds: [] }, { deviceIds: ['printer-1'], expiringWithinS: 60 }, { deviceIds: ['printer-1', 'printer-1'] }, { deviceIds: ['../x'] }, { deviceIds: ['printer-1'], schedule: 'six-step' }]) {
      const r = await fleet.api<{ error: { code: string } }>('/api/renewals', { body });
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.body.error.code, 'E_BAD_REQUEST');
    }
    const unknown = await fleet.api<{ error: { code: string; message: string } }>('/api/renewals', { body: { deviceIds: ['printer-1', 'printer-9'] } });
    assert.deepEqual([unknown.status, unknown.body.error.code], [404, 'E_DEVICE_UNKNOWN']);
    assert.match(unknown.body.error.message, /printer-9/);
    const none = await fleet.api<{ error: { message: string } }>('/api/renewals', { body: { expiringWithinS: 3600 } });
    assert.equal(none.status, 400);
    assert.match(none.body.error.message, /no device certificate expires within 3600 s/);

    const started = await fleet.api<RotationSummary>('/api/renewals', { body: { deviceIds: ['printer-1', 'console-2'] } });
    assert.equal(started.status, 201, started.text);
    assert.equal(started.body.schedule, 'renew');
    assert.deepEqual(started.body.rollback, { possible: false, reason: 'a renewal has no rollback; every device keeps a valid certificate' });
    const done = await waitFor(started.body.id);
    assert.deepEqual([done.acked, done.total], [2, 2]);
    // New certificates are later by whole seconds: a renewal in the same second would not extend them (E_RENEWAL_NOT_LONGER).
    await new Promise((r) => setTimeout(r, 1100));
    const all = await fleet.api<RotationSummary>('/api/renewals', { body: { expiringWithinS: 800 * 86_400 } });
    assert.equal(all.status, 201, all.text);
    assert.equal((await waitFor(all.body.id)).total, 3);

    const audit = (await fleet.api<AuditPage>('/api/audit?order=desc&limit=1000')).body.entries;
    const renew = audit.filter((e) => e.action === 'operator.renew');
    assert.deepEqual(renew.map((e) => [e.actor, e.rotationId, e.code]).reverse(), [
      ['operator:alice', null, 'E_DEVICE_UNKNOWN'], ['operator:alice', started.body.id, null], ['operator:alice', all.body.id, null],
    ]);
    const db = new FleetDb(join(fleet.dataDir, 'manager.db'));
    try {
      const report = verifyAudit(new AuditLog(db).all());
      assert.equal(report.chain, null);
      assert.deepEqual(report.violations, []);
      assert.equal(report.rotations, 2);
    } finally {
      db.close();
    }
  });

  it('the dashboard\'s Rotation view shows a read-only Schedule box (no page error, no CSP violation)', async () => {
    const problems: string[] = [];
    const { cert, key } = fleet.operator('viewer');
    const context = await browser.newContext({ clientCertificates: [{ origin: fleet.url, cert: Buffer.from(cert), key: Buffer.from(key) }], ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`); });
    await page.goto(`${fleet.url}/#/rotation`);
    const box = page.locator('.schedule');
    await box.locator('h3', { hasText: 'Schedule' }).waitFor();
    await box.locator('dd', { hasText: 'Sat 01:00-05:00; Sun 01:00-03:00 (UTC)' }).waitFor();
    const text = await box.innerText();
    assert.match(text, /Checks\s+0 0 1 1 \* · next/);
    assert.match(text, /Root rotation\s+in [\d,]+ d · the root expires \d{4}-\d\d-\d\d, rotated 180d before \(batched\)/);
    assert.match(text, /Renewal\s+in [\d,]+ d · certificates renewed 30d before they expire/);
    assert.equal(await box.locator('button, input, select').count(), 0, 'read-only');
    assert.match(await page.locator('.material').innerText(), /New device certificates under the active root .*; no root changes/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-schedule.png'), fullPage: true });
    await context.close();
    assert.deepEqual(problems, []);
  });

  it('serve refuses unusable scheduler settings before it starts anything (exit 2, the option named)', () => {
    for (const [args, message] of [
      [['--window', 'Caturday 01:00-05:00'], /--window "Caturday 01:00-05:00": "Caturday" is not a day name/],
      [['--check-cron', 'hourly'], /--check-cron "hourly" is not a cron expression/],
      [['--renew-before', 'soon'], /expected a duration such as 90s, 30m, 12h or 3d, got "soon"/],
    ] as const) {
      const r = spawnSync(process.execPath, [MANAGER_BIN, 'serve', '--data', join(fleet.dir, 'nowhere'), '--mgmt', join(fleet.dir, 'nowhere'), ...args], { encoding: 'utf8', timeout: 60_000 });
      assert.notEqual(r.status, 0, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, message);
    }
  });
});
