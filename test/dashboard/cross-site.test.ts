/**
 * The cross-site attack the operator API must hold against, done by a real
 * browser: an admin with an operator certificate visits a page on another
 * site, which posts to the manager (a form into a hidden frame, and no-cors
 * fetches with text/plain, an empty body, or none: the requests a browser
 * sends cross-site without a preflight, with the admin's certificate). The
 * rotation keeps running, every attempt is refused and recorded as
 * `http.denied` under the admin's name; the dashboard's own page still acts.
 */
import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import type { AuditPage, RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

/** The attacker's page: every simple cross-site post it can make to `target` for rotation `id`. */
function evilPage(target: string, id: string): string {
  const action = (a: string) => `${target}/api/rotations/${id}/${a}`;
  return `<!doctype html><meta charset="utf-8"><title>cute cats</title>
<iframe name="sink" style="display:none"></iframe>
<form id="f1" method="POST" action="${action('abort')}" target="sink"><input name="reason" value="x"></form>
<form id="f2" method="POST" action="${target}/api/rotations" target="sink" enctype="text/plain"><input name='{"schedule":"six-step","x":"' value='"}'></form>
<form id="f3" method="POST" action="${action('pause')}" target="sink" enctype="multipart/form-data"><input name="a" value="{}"></form>
<script>
(async () => {
  const tries = [
    fetch(${JSON.stringify(action('abort'))}, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '' }),
    fetch(${JSON.stringify(action('abort'))}, { method: 'POST', mode: 'no-cors', credentials: 'include' }),
    fetch(${JSON.stringify(action('pause'))}, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '{}' }),
    fetch(${JSON.stringify(action('abort'))}, { method: 'POST', mode: 'cors', credentials: 'include', headers: { 'content-type': 'application/json' }, body: '{}' }),
  ];
  for (const t of tries) await t.catch(() => undefined);
  for (const id of ['f1', 'f2', 'f3']) {
    const loaded = new Promise((r) => document.querySelector('iframe').addEventListener('load', r, { once: true }));
    document.getElementById(id).submit();
    await Promise.race([loaded, new Promise((r) => setTimeout(r, 3000))]);
  }
  document.title = 'done';
})();
</script>`;
}

describe('dashboard: a page on another site cannot act through the admin\'s browser (Chromium, trustroll serve, agent processes)', function () {
  this.timeout(180_000);
  let fleet: ServiceFleet;
  let browser: Browser;
  let evil: Server | null = null;

  before(async () => {
    [fleet, browser] = await Promise.all([
      ServiceFleet.create({ servers: 1, clients: 2, broker: 'embedded', ackTimeoutMs: 2000 }),
      chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] }),
    ]);
  });
  after(async () => {
    await browser?.close();
    await new Promise((r) => (evil ? evil.close(r) : r(undefined)));
    await fleet?.close();
  });

  it('form posts and no-cors fetches from another origin are refused with nothing changed and audited as the admin\'s; the dashboard still acts', async () => {
    await fleet.killDevice('console-2');
    const started = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'six-step' } });
    assert.equal(started.status, 201, started.text);
    const id = started.body.id;
    const before = (await fleet.api<AuditPage>('/api/audit?order=desc&limit=1')).body.entries[0]!.seq;

    let html = '';
    evil = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html));
    await new Promise<void>((r) => evil!.listen(0, '127.0.0.1', r));
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
    html = evilPage(fleet.url, id);

    const { cert, key } = fleet.operator('admin');
    const context = await browser.newContext({ clientCertificates: [{ origin: fleet.url, cert: Buffer.from(cert), key: Buffer.from(key) }], ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(evilUrl);
    await page.waitForFunction("document.title === 'done'", undefined, { timeout: 60_000 });

    const after = (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body;
    assert.equal(after.status, 'running', 'neither aborted (rolled back) nor paused');
    assert.equal((await fleet.api<{ rotations: RotationSummary[] }>('/api/rotations')).body.rotations.length, 1, 'no second rotation');
    const entries = (await fleet.api<AuditPage>(`/api/audit?after=${before}&limit=1000`)).body.entries;
    assert.deepEqual(entries.filter((e) => e.action.startsWith('operator.')).map((e) => e.action), [], 'no operator action');
    const denied = entries.filter((e) => e.action === 'http.denied');
    const routes = new Set(denied.map((e) => (e.detail as { route: string }).route));
    assert.ok(denied.length >= 6, `the page's posts were refused and recorded (${denied.length}): ${JSON.stringify(denied.map((e) => [e.code, e.detail]))}`);
    assert.ok(denied.every((e) => e.actor === 'operator:alice'), 'recorded as the admin whose browser sent them');
    assert.ok(denied.every((e) => e.code === 'E_CROSS_SITE' || e.code === 'E_MEDIA_TYPE'));
    for (const r of [`/api/rotations/${id}/abort`, `/api/rotations/${id}/pause`, '/api/rotations']) assert.ok(routes.has(r), `${r} refused`);

    // The dashboard, from its own origin, still acts with the same certificate.
    const dash = await context.newPage();
    await dash.goto(fleet.url);
    const paused = await dash.evaluate(`fetch('/api/rotations/${id}/pause', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.status)`);
    assert.equal(paused, 200);
    assert.equal((await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.status, 'paused');
    await context.close();
  });
});
