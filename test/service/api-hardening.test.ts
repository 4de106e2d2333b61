/**
 * The operator API as an attacker and an operator meet it, against a real
 * `trustroll serve` with agent processes: cross-site requests refused with
 * nothing changed (every mutating route, every form a browser sends without
 * a preflight), revocation closing open event streams and keep-alive
 * connections, numbers that must be finite, router-level errors in the one
 * error shape, security headers, refused requests and operator actions in
 * the audit log and its live feed, and E_ROLLBACK_IMPOSSIBLE carried to the
 * API, the rotation's error and the audit entry.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, request, type RequestOptions } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditEntry, AuditPage, RotationSummary } from '../../manager/http/api-types.ts';
import { OperatorPki } from '../../manager/pki/operator-pki.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
}

describe('operator API hardening: cross-site, revocation, numbers, error shape, headers, audit (trustroll serve, agent processes)', function () {
  this.timeout(240_000);
  let fleet: ServiceFleet;
  before(async () => {
    fleet = await ServiceFleet.create({ servers: 1, clients: 2, broker: 'embedded', ackTimeoutMs: 2000 });
  });
  after(async () => {
    await fleet?.close();
  });

  /** One HTTPS request with exactly the headers and body given (as admin unless told otherwise). */
  function raw(path: string, o: { method?: string; headers?: Record<string, string>; body?: string | Buffer; as?: 'admin' | 'viewer' | 'none'; cred?: { cert: string; key: string }; agent?: Agent } = {}): Promise<Raw> {
    const as = o.as ?? 'admin';
    const url = new URL(path, fleet.url);
    const opts: RequestOptions = {
      method: o.method ?? 'GET', ca: fleet.operators.ca, headers: o.headers ?? {}, agent: o.agent,
      ...(o.cred ?? (as === 'none' ? {} : fleet.operator(as))),
    };
    return new Promise((resolve, reject) => {
      const req = request(url, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json = {} as Raw['json'];
          try { json = JSON.parse(text) as Raw['json']; } catch { /* HTML or text */ }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      });
      req.on('error', reject);
      req.end(o.body);
    });
  }

  const own = () => new URL(fleet.url).origin;
  const EVIL = 'https://evil.example';
  const rotations = async () => (await fleet.api<{ rotations: RotationSummary[] }>('/api/rotations')).body.rotations;
  const auditAll = async (): Promise<AuditEntry[]> => (await fleet.api<AuditPage>('/api/audit?order=desc&limit=1000')).body.entries;

  /** Every form a browser page may send cross-site without a CORS preflight, plus JSON from a foreign origin. */
  function crossSiteForms(json: object): { name: string; headers: Record<string, string>; body?: string }[] {
    const text = JSON.stringify(json);
    return [
      { name: 'no body, foreign Origin', headers: { origin: EVIL } },
      { name: 'no body, no Origin', headers: {} },
      { name: 'text/plain empty, foreign Origin', headers: { origin: EVIL, 'content-type': 'text/plain' }, body: '' },
      { name: 'text/plain carrying JSON, no Origin', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: text },
      { name: 'form, foreign Origin', headers: { origin: EVIL, 'content-type': 'application/x-www-form-urlencoded' }, body: 'schedule=six-step&reason=x' },
      { name: 'form, no Origin', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `${text}=` },
      { name: 'multipart, no Origin', headers: { 'content-type': 'multipart/form-data; boundary=XX' }, body: `--XX\r\nContent-Disposition: form-data; name="schedule"\r\n\r\nsix-step\r\n--XX--\r\n` },
      { name: 'multipart, foreign Origin', headers: { origin: EVIL, 'content-type': 'multipart/form-data; boundary=XX' }, body: `--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\n${text}\r\n--XX--\r\n` },
      { name: 'JSON, foreign Origin', headers: { origin: EVIL, 'content-type': 'application/json' }, body: text },
      { name: 'JSON, Origin null', headers: { origin: 'null', 'content-type': 'application/json' }, body: text },
      { name: 'JSON, Sec-Fetch-Site cross-site', headers: { 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' }, body: text },
      { name: 'JSON, Sec-Fetch-Site same-site', headers: { 'sec-fetch-site': 'same-site', origin: own().replace('127.0.0.1', 'localhost'), 'content-type': 'application/json' }, body: text },
    ];
  }

  async function expectRefused(path: string, json: object): Promise<void> {
    for (const f of crossSiteForms(json)) {
      const r = await raw(path, { method: 'POST', headers: f.headers, body: f.body });
      assert.ok(r.status === 403 || r.status === 415, `${path} ${f.name}: ${r.status} ${r.text}`);
      assert.deepEqual(Object.keys(r.json), ['error'], `${path} ${f.name}: one error shape`);
      assert.equal(r.json.error!.code, r.status === 403 ? 'E_CROSS_SITE' : 'E_MEDIA_TYPE', `${path} ${f.name}`);
    }
  }

  it('refuses every cross-site form on every mutating route and changes nothing; the dashboard\'s own same-origin JSON still acts', async () => {
    await expectRefused('/api/rotations', { schedule: 'six-step' });
    await expectRefused('/api/renewals', { deviceIds: ['printer-1'] });
    assert.deepEqual(await rotations(), [], 'no rotation or renewal was started');

    // A rotation that cannot finish while console-2 is away, paused by the operator.
    await fleet.killDevice('console-2');
    const started = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'six-step' } });
    assert.equal(started.status, 201, started.text);
    const id = started.body.id;
    const paused = await raw(`/api/rotations/${id}/pause`, { method: 'POST', headers: { origin: own(), 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(paused.status, 200, `same-origin JSON acts: ${paused.text}`);
    assert.equal(paused.json.status, 'paused');
    const before = (await auditAll())[0]!.seq;

    for (const action of ['resume', 'abort', 'pause']) await expectRefused(`/api/rotations/${id}/${action}`, {});
    await expectRefused('/api/devices/console-1/exclude', { reason: 'cross-site' });
    const after = await fleet.api<RotationSummary>(`/api/rotations/${id}`);
    assert.equal(after.body.status, 'paused', 'still paused: neither resumed nor aborted');
    const fleetPage = await fleet.api<{ devices: { id: string; excluded: boolean }[] }>('/api/fleet');
    assert.ok(fleetPage.body.devices.every((d) => !d.excluded), 'no device excluded');
    const since = (await auditAll()).filter((e) => e.seq > before);
    assert.deepEqual(since.filter((e) => e.action.startsWith('operator.')), [], 'no operator action recorded');
    const refused = since.filter((e) => e.action === 'http.denied');
    assert.ok(refused.length >= 20, `each refusal recorded (${refused.length})`);
    assert.ok(refused.every((e) => e.actor === 'operator:alice' && ['E_CROSS_SITE', 'E_MEDIA_TYPE'].includes(e.code!)), JSON.stringify(refused[0]));
    assert.ok(refused.some((e) => (e.detail as { route: string }).route === `/api/rotations/${id}/abort`), 'the route is named');

    // A body that is not an object, even as JSON from a script.
    for (const body of ['null', '[]', '"x"', '7']) {
      const r = await raw(`/api/rotations/${id}/resume`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 400, `${body}: ${r.text}`);
      assert.equal(r.json.error!.code, 'E_BAD_REQUEST');
    }
    assert.equal((await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.status, 'paused');

    // Scripts (no Origin, JSON) act as before; the rotation is rolled back and the console returns.
    const aborted = await fleet.api<RotationSummary>(`/api/rotations/${id}/abort`, { body: {} });
    assert.equal(aborted.status, 200, aborted.text);
    await fleet.restartDevice('console-2');
    await fleet.until('rolled back', async () => (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.status === 'rolled-back', 90_000);
  });

  it('numbers are finite and in range (400 E_BAD_REQUEST), router-level errors answer in the one shape, no internal detail leaks', async () => {
    const bad = [
      '/api/audit?limit=Infinity', '/api/audit?limit=1e400', '/api/audit?limit=-Infinity', '/api/audit?limit=NaN', '/api/audit?after=1e300',
      '/api/audit?before=Infinity', '/api/fleet?limit=Infinity', '/api/fleet?offset=1e400', '/api/fleet?limit=-Infinity', '/api/fleet?offset=-1',
    ];
    for (const path of bad) {
      const r = await raw(path);
      assert.equal(r.status, 400, `${path}: ${r.status} ${r.text}`);
      assert.equal(r.json.error!.code, 'E_BAD_REQUEST', path);
      assert.doesNotMatch(r.text, /SQLITE|FST_|statusCode/, path);
    }
    assert.equal((await raw('/api/audit?after=9007199254740991')).status, 200);
    for (const body of ['{"expiringWithinS":"Infinity"}', '{"expiringWithinS":1e400}', '{"deviceIds":["printer-1"],"excludeOfflineAfterS":"-Infinity"}', '{"deviceIds":["printer-1"],"excludeOfflineAfterS":1e400}']) {
      const r = await raw('/api/renewals', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 400, `${body}: ${r.text}`);
      assert.equal(r.json.error!.code, 'E_BAD_REQUEST');
    }
    const shapes: [string, { method?: string; headers?: Record<string, string>; body?: string }, number, string][] = [
      [`/api/devices/${'a'.repeat(101)}`, {}, 414, 'E_BAD_REQUEST'],
      [`/api/rotations/${'b'.repeat(150)}/timeline`, {}, 414, 'E_BAD_REQUEST'],
      ['/api/devices/%E0%A4%A', {}, 400, 'E_BAD_REQUEST'],
      ['/api/nothing-here', {}, 404, 'E_NOT_FOUND'],
      ['/api/rotations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"schedule":' }, 400, 'E_BAD_REQUEST'],
      ['/api/rotations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' }, 400, 'E_BAD_REQUEST'],
      ['/api/rotations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"subject":"${'x'.repeat(70_000)}"}` }, 413, 'E_BAD_REQUEST'],
      ['/api/rotations', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' }, 404, 'E_NOT_FOUND'],
    ];
    for (const [path, o, status, code] of shapes) {
      const r = await raw(path, o);
      assert.equal(r.status, status, `${o.method ?? 'GET'} ${path.slice(0, 60)}: ${r.text.slice(0, 200)}`);
      assert.deepEqual(Object.keys(r.json), ['error'], path.slice(0, 60));
      assert.deepEqual(Object.keys(r.json.error!).sort(), ['code', 'message']);
      assert.equal(r.json.error!.code, code);
      assert.doesNotMatch(r.text, /FST_|statusCode|aaaaaaaaaaaaaaaaaaaa/, 'no framework code, no echo of the long parameter');
    }
  });

  it('sends no-store and nosniff on API answers, HSTS everywhere, CSP and frame protection on every HTML answer (the 401 page too)', async () => {
    for (const [path, as] of [['/api/fleet', 'admin'], ['/api/me', 'viewer'], ['/api/fleet', 'none'], ['/api/nothing', 'admin'], ['/metrics', 'admin']] as const) {
      const r = await raw(path, { as });
      assert.equal(r.headers['cache-control'], 'no-store', path);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
      assert.match(String(r.headers['strict-transport-security']), /^max-age=\d{7,}/, path);
    }
    for (const [path, as, status] of [['/', 'admin', 200], ['/', 'none', 401], ['/index.html', 'viewer', 200]] as const) {
      const r = await raw(path, { as });
      assert.equal(r.status, status, path);
      assert.match(String(r.headers['content-type']), /^text\/html/);
      assert.match(String(r.headers['content-security-policy']), /default-src 'none'.*frame-ancestors 'none'/, `${path} as ${as}`);
      assert.doesNotMatch(String(r.headers['content-security-policy']), /unsafe-inline/, `${path} as ${as}: no inline allowance`);
      assert.equal(r.headers['x-frame-options'], 'DENY');
      assert.match(String(r.headers['strict-transport-security']), /^max-age=/);
    }
  });

  /** Open /api/events; resolves once the first event arrived, with what it saw and when it closed. */
  function openStream(o: { cred?: { cert: string; key: string }; token?: string }): Promise<{ text: () => string; closed: Promise<number> }> {
    return new Promise((resolve, reject) => {
      const req = request(new URL('/api/events', fleet.url), {
        ca: fleet.operators.ca, ...(o.cred ?? {}), headers: o.token ? { authorization: `Bearer ${o.token}` } : {}, agent: false,
      }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`events: ${res.statusCode}`));
        let text = '';
        const closed = new Promise<number>((r) => res.socket.once('close', () => r(Date.now())));
        res.on('data', (c: Buffer) => {
          text += c.toString('utf8');
          if (text.includes('event: fleet')) resolve({ text: () => text, closed });
        });
        res.on('error', () => undefined);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('revoking an operator or a token closes its open event streams and keep-alive connections within seconds; others stay open', async () => {
    const ops = await OperatorPki.openOrCreate(fleet.mgmtDir, new Date());
    const carol = await ops.issueOperator({ name: 'carol', role: 'admin', now: new Date() });
    writeFileSync(join(fleet.dir, 'carol.pem'), carol.cert);
    const tok = spawnSync(process.execPath, [MANAGER_BIN, 'token', 'create', '--data', fleet.dataDir, '--name', 'streamer', '--role', 'read'], { encoding: 'utf8' });
    assert.equal(tok.status, 0, tok.stderr);
    const secret = tok.stdout.trim();

    const alice = await openStream({ cred: fleet.operator('admin') });
    const carolStream = await openStream({ cred: carol });
    const tokenStream = await openStream({ token: secret });
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const first = await raw('/api/me', { cred: carol, agent: keepAlive });
    assert.equal(first.status, 200);
    const sockets = Object.values(keepAlive.freeSockets).flat() as Socket[];
    assert.equal(sockets.length, 1, 'one idle keep-alive connection of carol');
    const keepAliveClosed = new Promise<number>((r) => sockets[0]!.once('close', () => r(Date.now())));

    let t0 = Date.now();
    const revoke = spawnSync(process.execPath, [MANAGER_BIN, 'token', 'revoke', '--data', fleet.dataDir, '--name', 'streamer'], { encoding: 'utf8' });
    assert.equal(revoke.status, 0, revoke.stderr);
    const tokenClosedAt = await Promise.race([tokenStream.closed, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('token stream still open after 6 s')), 6000))]);
    assert.ok(tokenClosedAt - t0 < 6000);

    t0 = Date.now();
    const r = spawnSync(process.execPath, [MANAGER_BIN, 'mgmt', 'revoke-operator', '--dir', fleet.mgmtDir, '--cert', join(fleet.dir, 'carol.pem')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const limit = (what: string) => new Promise<number>((_, rej) => setTimeout(() => rej(new Error(`${what} still open after 8 s`)), 8000));
    const [streamAt, keepAliveAt] = await Promise.all([Promise.race([carolStream.closed, limit('carol\'s stream')]), Promise.race([keepAliveClosed, limit('carol\'s keep-alive connection')])]);
    assert.ok(streamAt - t0 < 8000 && keepAliveAt - t0 < 8000);
    keepAlive.destroy();
    assert.equal((await raw('/api/me', { cred: carol })).status, 401, 'carol is refused from now on');
    assert.equal((await raw('/api/events', { headers: { authorization: `Bearer ${secret}` }, as: 'none' })).status, 401);

    // Alice's stream was never closed and still receives events (here: the refusals just made, from the live audit feed).
    const open = await Promise.race([alice.closed.then(() => false), new Promise<boolean>((res) => setTimeout(() => res(true), 500))]);
    assert.ok(open, 'the admin\'s stream stays open');
    await fleet.until('refusals in the admin\'s live feed', async () => alice.text().includes('"action":"http.denied"') && alice.text().includes('operator:carol'), 10_000);
  });

  it('refused requests (anonymous, read-only, revoked) and every operator action are audited and reach the live audit feed', async () => {
    const stream = await openStream({ cred: fleet.operator('admin') });
    assert.equal((await fleet.api('/api/fleet', { as: 'none' })).status, 401);
    const viewer = await fleet.api('/api/rotations', { as: 'viewer', body: { schedule: 'six-step' } });
    assert.equal(viewer.status, 403);
    const ex = await fleet.api('/api/devices/printer-1/exclude', { body: { reason: 'no rotation is open' } });
    assert.equal(ex.status, 409, 'refused for the state, not the credential (not audited as denied)');
    const started = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'batched' } });
    assert.equal(started.status, 201, started.text);
    const id = started.body.id;
    const done = await fleet.until('complete', async () => {
      const s = (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body;
      return s.status === 'complete' ? s : null;
    }, 120_000);
    assert.equal(done.errorCode, null);
    const entries = await auditAll();
    const denied = entries.filter((e) => e.action === 'http.denied');
    assert.ok(denied.some((e) => e.actor === 'anonymous' && e.code === 'E_AUTH_REQUIRED' && (e.detail as { route: string }).route === '/api/fleet'), 'anonymous 401');
    assert.ok(denied.some((e) => e.actor === 'operator:bob' && e.code === 'E_FORBIDDEN' && (e.detail as { method: string }).method === 'POST'), 'read-only 403');
    assert.ok(denied.some((e) => e.actor === 'operator:carol' && e.code === 'E_AUTH_REQUIRED'), 'revoked operator named by its certificate');
    assert.ok(!denied.some((e) => e.code === 'E_DEVICE_DONE' || e.code === 'E_ROTATION_STATE'));
    await fleet.until('operator actions live', async () => {
      const t = stream.text();
      return t.includes('"action":"operator.start"') && t.includes(`"rotationId":"${id}"`) && t.includes('"code":"E_FORBIDDEN"') && t.includes('"code":"E_AUTH_REQUIRED"');
    }, 10_000);
  });

  it('stops promptly on SIGTERM with event streams open (their streams end, the service exits 0)', async () => {
    const streams = await Promise.all([openStream({ cred: fleet.operator('admin') }), openStream({ cred: fleet.operator('viewer') })]);
    const t0 = Date.now();
    const code = await Promise.race([fleet.stopService(), new Promise<string>((r) => setTimeout(() => r('still running after 15 s'), 15_000))]);
    assert.equal(code, 0);
    for (const s of streams) assert.ok((await s.closed) - t0 < 15_000);
  });
});
