import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

describe('dashboard: Chromium against trustroll serve and a fleet of agent processes over Mosquitto', function () {
  this.timeout(240_000);
  let fleet: ServiceFleet;
  let browser: Browser;
  const problems: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    [fleet, browser] = await Promise.all([
      ServiceFleet.create({ servers: 2, clients: 2, ackTimeoutMs: 2000 }),
      chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      }),
    ]);
  });
  after(async () => {
    await browser?.close();
    await fleet?.close();
  });

  /** A browser context logged in with an operator certificate; page errors and CSP violations are collected. */
  async function open(who: 'admin' | 'viewer', hash: string): Promise<{ context: BrowserContext; page: Page }> {
    const { cert, key } = fleet.operator(who);
    const context = await browser.newContext({
      clientCertificates: [{ origin: fleet.url, cert: Buffer.from(cert), key: Buffer.from(key) }],
      ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 },
    });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
    page.on('console', (m) => {
      // A 404 of /api/rotations/current (no rotation yet) is an answer the page handles, not a problem.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`${who}: console: ${m.text()}`);
    });
    await page.goto(`${fleet.url}/${hash}`);
    return { context, page };
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });

  it('an admin starts a rotation from the UI, sees the offline device named as the one a step waits for, and watches it complete', async () => {
    const { context, page } = await open('admin', '#/fleet');
    await page.locator('.who', { hasText: 'operator:alice' }).waitFor();
    assert.match(await page.locator('.who').innerText(), /admin/);
    // Every device online, live: the counts and rows follow the retained device states.
    await page.locator('.count', { hasText: 'online' }).locator('.n', { hasText: /^4$/ }).waitFor({ timeout: 60_000 });
    assert.equal(await page.locator('.fleet-table tbody tr').count(), 4);
    await page.locator('.link-state', { hasText: 'live' }).waitFor();

    await fleet.killDevice('console-2');
    const row = page.locator('.fleet-table tbody tr', { hasText: 'console-2' });
    await row.locator('.presence.offline').waitFor({ timeout: 30_000 });
    await shot(page, 'fleet-console-2-offline');

    await page.click('nav.tabs >> text=Rotation');
    await page.locator('text=No rotation is open').waitFor();
    await page.click('button:has-text("Start rotation…")');
    const dialog = page.locator('dialog');
    await dialog.locator('table tbody tr').first().waitFor();
    const steps = await dialog.locator('table tbody tr td:first-child').allInnerTexts();
    assert.deepEqual(steps, ['P1', 'P2', 'P3', 'P4', 'P5', 'P6'], 'the six-step schedule is shown before it runs');
    assert.match(await dialog.innerText(), /every peer's P2/, 'with what each step waits for');
    await dialog.locator('input[value=batched]').check();
    assert.deepEqual(await dialog.locator('table tbody tr td:first-child').allInnerTexts(), ['B1', 'B2', 'B3']);
    await dialog.locator('input[value="six-step"]').check();
    // A new subject for the new root, and OldWithNew for the devices left behind.
    await dialog.locator('input[name=subject]').fill('CN=Dashboard Fleet Root 2027,O=trustroll test');
    await dialog.locator('input[name=oldWithNew]').check();
    assert.deepEqual(await dialog.locator('select[name=algorithm] option').allInnerTexts(), ["keep the current root's", 'RSA-2048', 'RSA-3072', 'P-256', 'P-384']);
    await shot(page, 'start-dialog');
    await dialog.locator('button.primary').click();
    await dialog.waitFor({ state: 'detached' });
    const started = (await fleet.api<{ rotations: { id: string }[] }>('/api/rotations')).body.rotations[0]!;
    const detail = (await fleet.api<{ material: { newRoot: { subject: string } } }>(`/api/rotations/${started.id}`)).body;
    assert.match(detail.material.newRoot.subject, /Dashboard Fleet Root 2027/, 'the new root carries the subject typed in the dialog');

    const sentence = page.locator('li.wait', { hasText: /P4 of printer-\d .*waits for P2 of console-2, offline since \d\d:\d\d/ }).first();
    await sentence.waitFor({ timeout: 60_000 });
    assert.equal(await sentence.locator('.blocker.offline').count() >= 1, true, 'the offline device is highlighted');
    assert.match(await page.locator('.holdups').innerText(), /P2 of console-2, offline since \d\d:\d\d — holds up \d+ device-step/);
    await page.locator('.rot-head .badge', { hasText: 'running' }).waitFor();
    await shot(page, 'rotation-waiting-for-console-2');

    // The device named in the sentence opens its panel; the exclusion dialog wants a reason and a confirmation.
    await sentence.locator('.blocker.offline a.device', { hasText: 'console-2' }).first().click();
    const panel = page.locator('aside.panel');
    await panel.locator('h3', { hasText: 'Steps' }).waitFor();
    assert.match(await panel.innerText(), /offline/);
    await panel.locator('button', { hasText: 'Exclude from rotation' }).click();
    const exclude = page.locator('dialog');
    const confirm = exclude.locator('button.danger');
    assert.equal(await confirm.isDisabled(), true, 'no exclusion without a reason');
    await exclude.locator('textarea[name=reason]').fill('sent for repair');
    assert.equal(await confirm.isDisabled(), true, 'nor without the confirmation');
    await exclude.locator('input[name=sure]').check();
    assert.equal(await confirm.isDisabled(), false);
    await exclude.locator('button', { hasText: 'Cancel' }).click();
    await exclude.waitFor({ state: 'detached' });
    await page.click('nav.tabs >> text=Rotation');
    await sentence.waitFor();

    // Pause and resume; the abort dialog says what abort will do (no printer has its new certificate yet: roll back), and "Keep it" keeps it.
    await page.click('.actions-bar button:has-text("Pause")');
    await page.locator('.rot-head .badge', { hasText: 'paused' }).waitFor();
    await page.click('.actions-bar button:has-text("Abort…")');
    assert.match(await page.locator('dialog').innerText(), /Roll back\. No printer has its new certificate yet, so every device returns to exactly its\s+trust store and certificate from before the rotation/);
    await shot(page, 'abort-rollback-dialog');
    await page.click('dialog button:has-text("Keep it")');
    await page.locator('dialog').waitFor({ state: 'detached' });
    await page.click('.actions-bar button:has-text("Resume")');
    await page.locator('.rot-head .badge', { hasText: 'running' }).waitFor();

    await fleet.restartDevice('console-2');
    await page.locator('.rot-head .badge', { hasText: 'complete' }).waitFor({ timeout: 120_000 });
    const rotation = (await fleet.api<{ rotations: RotationSummary[] }>('/api/rotations')).body.rotations[0]!;
    assert.equal(rotation.status, 'complete');
    assert.match(await page.locator('.rot-total .big').innerText(), new RegExp(`${rotation.total}\\s*/\\s*${rotation.total}`));
    assert.equal(await page.locator('.steps .step-row').count(), 6);
    await page.locator('.timeline .uplot canvas').waitFor();
    assert.equal(await page.locator('.actions-bar button', { hasText: 'Start rotation' }).count(), 1, 'a new rotation may start');
    await shot(page, 'rotation-complete');

    await page.click('nav.tabs >> text=Fleet');
    await page.locator('.fleet-table tbody tr .chip.l-R1').nth(3).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('.fleet-table tbody tr .chip').count(), 4, 'every device trusts R1 only');
    await page.click('.fleet-table a.device:has-text("printer-1")');
    await page.locator('.panel h3', { hasText: 'Steps' }).waitFor();
    assert.deepEqual(await page.locator('.panel table tbody tr td:first-child').allInnerTexts(), ['P1', 'P4', 'P5']);
    assert.match(await page.locator('.panel').innerText(), /Agent applies\s+issuerChain, oldWithNew/, 'what the agent applies, from its state message');
    await shot(page, 'device-panel');

    await page.click('nav.tabs >> text=Audit');
    await page.locator('.audit-table td', { hasText: 'operator:alice' }).first().waitFor();
    await shot(page, 'audit');
    await page.click('nav.tabs >> text=Broker');
    await page.locator('.stats .stat, .notice').first().waitFor();
    await page.locator('.broker', { hasText: 'mosquitto' }).waitFor();
    await shot(page, 'broker');
    await page.click('nav.tabs >> text=Certificates');
    await page.locator('svg.cert-timeline').waitFor();
    assert.ok(await page.locator('.certificates table tbody tr').count() >= 3, 'roots, management CA and operator CA listed');
    await shot(page, 'certificates');
    await context.close();
    assert.deepEqual(problems, []);
  });

  it('a read-only operator sees no action buttons, and a direct POST from that session gets 403', async () => {
    const { context, page } = await open('viewer', '#/rotation');
    await page.locator('.who', { hasText: 'operator:bob' }).waitFor();
    await page.locator('.rot-head').waitFor();
    await page.locator('.readonly', { hasText: 'Read-only access' }).waitFor();
    assert.equal(await page.locator('.actions-bar').count(), 0);
    assert.equal(await page.locator('button', { hasText: /Start rotation|Pause|Resume|Abort/ }).count(), 0);
    const answer = await page.evaluate(`fetch('/api/rotations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ schedule: 'six-step' }) })
      .then(async (r) => ({ status: r.status, body: await r.json() }))`) as { status: number; body: { error: { code: string } } };
    assert.equal(answer.status, 403);
    assert.equal(answer.body.error.code, 'E_FORBIDDEN');
    await shot(page, 'read-only');
    await context.close();
    assert.equal((await fleet.api<{ rotations: RotationSummary[] }>('/api/rotations')).body.rotations.length, 1, 'no second rotation');
    assert.deepEqual(problems, []);
  });
});
