/**
 * The dashboard on a fleet with separate client and server roots (Chromium
 * against `trustroll serve` and agent processes over Mosquitto): the start
 * dialog offers each root's own schedule, never a single-root one; the
 * client root's rotation started from it completes, changes only the
 * client root, and the Certificates view lists both roots.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import type { CertificatesView, RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

describe('dashboard: a fleet with separate client and server roots', function () {
  this.timeout(180_000);
  let fleet: ServiceFleet;
  let browser: Browser;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    [fleet, browser] = await Promise.all([
      ServiceFleet.create({ servers: 1, clients: 2, ackTimeoutMs: 2000, separateRoots: true }),
      chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] }),
    ]);
  });
  after(async () => {
    await browser?.close();
    await fleet?.close();
  });

  it('the API refuses a single-root schedule (E_ROOT_SIDE) and a schedule that contradicts "root" (E_BAD_REQUEST); nothing starts', async () => {
    const single = await fleet.api<{ error: { code: string; message: string } }>('/api/rotations', { method: 'POST', body: { schedule: 'six-step' } });
    assert.equal(single.status, 409);
    assert.equal(single.body.error.code, 'E_ROOT_SIDE');
    const both = await fleet.api<{ error: { code: string; message: string } }>('/api/rotations', { method: 'POST', body: { schedule: 'client-root', root: 'server' } });
    assert.equal(both.status, 400);
    assert.equal(both.body.error.code, 'E_BAD_REQUEST');
    assert.match(both.body.error.message, /rotates the client root, not the server root/);
    assert.deepEqual((await fleet.api<{ rotations: unknown[] }>('/api/rotations')).body.rotations, []);
  });

  it('the start dialog offers the server root and the client root; the client root rotation started from it completes and only that root changes', async () => {
    const roots = async () => (await fleet.api<CertificatesView>('/api/certificates')).body.roots.filter((r) => r.kind === 'active-root');
    const before = await roots();
    assert.deepEqual(before.map((r) => r.side), ['server', 'client']);

    const { cert, key } = fleet.operator('admin');
    const context = await browser.newContext({ clientCertificates: [{ origin: fleet.url, cert: Buffer.from(cert), key: Buffer.from(key) }], ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    const problems: string[] = [];
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${fleet.url}/#/rotation`);
    await page.locator('text=No rotation is open').waitFor();
    await page.click('button:has-text("Start rotation…")');
    const dialog = page.locator('dialog');
    await dialog.locator('table tbody tr').first().waitFor();
    assert.match(await dialog.locator('legend').first().innerText(), /Root to rotate/);
    assert.deepEqual(await dialog.locator('input[name=schedule]').evaluateAll((els) => els.map((e) => e.getAttribute('value'))), ['server-root', 'client-root'], 'no single-root schedule is offered');
    await dialog.locator('input[value="client-root"]').check();
    assert.match(await dialog.innerText(), /The printers' certificates do not change/);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-separate-roots-start.png'), fullPage: true });
    await dialog.locator('button.primary', { hasText: 'client-root' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('.rot-head .badge', { hasText: 'complete' }).waitFor({ timeout: 120_000 });

    const rotation = (await fleet.api<{ rotations: RotationSummary[] }>('/api/rotations')).body.rotations[0]!;
    assert.equal(rotation.schedule, 'client-root');
    assert.equal(rotation.status, 'complete');
    const after = await roots();
    assert.equal(after[0]!.sha256, before[0]!.sha256, 'the server root is unchanged');
    assert.notEqual(after[1]!.sha256, before[1]!.sha256, 'the client root is new');
    const starts = (await fleet.api<{ entries: { action: string; detail: { root?: string; schedule?: string; refused?: string } }[] }>('/api/audit?limit=200')).body.entries
      .filter((e) => e.action === 'operator.start' && !e.detail.refused);
    assert.deepEqual(starts.map((e) => [e.detail.schedule, e.detail.root]), [['client-root', 'client']], 'the audit names the root');

    await page.click('nav.tabs >> text=Certificates');
    await page.locator('svg.cert-timeline').waitFor();
    const text = await page.locator('.certificates').innerText();
    assert.match(text, /server root \(active\)/);
    assert.match(text, /client root \(active\)/);
    await context.close();
    assert.deepEqual(problems, []);
  });
});
