import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { DASHBOARD_DIR, VENDOR_FILES, registerDashboard } from '../../manager/http/static.ts';

const ROOT = join(DASHBOARD_DIR, '..', '..');

/** Every .js file of the dashboard, relative to its folder. */
function modules(rel = ''): string[] {
  return readdirSync(join(DASHBOARD_DIR, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(posix.join(rel, e.name)) : e.name.endsWith('.js') ? [posix.join(rel, e.name)] : []);
}

describe('dashboard: static files (manager/http/static.ts)', () => {
  let app: FastifyInstance;
  before(async () => {
    app = Fastify();
    registerDashboard(app);
    await app.ready();
  });
  after(() => app.close());

  it('serves index.html at / with a CSP that allows exactly its inline import map', async () => {
    const res = await app.inject({ url: '/' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.body, readFileSync(join(DASHBOARD_DIR, 'index.html'), 'utf8'));
    assert.equal((await app.inject({ url: '/index.html' })).body, res.body);
    const map = /<script type="importmap">([\s\S]*?)<\/script>/.exec(res.body)![1]!;
    const hash = createHash('sha256').update(map).digest('base64');
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, new RegExp(`script-src 'self' 'sha256-${hash.replace(/[+/]/g, '\\$&')}'`));
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
  });

  it('serves each vendored library file byte for byte from node_modules with its content type', async () => {
    const types: Record<string, string> = { mjs: 'text/javascript; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', map: 'application/json; charset=utf-8' };
    for (const [pkg, files] of Object.entries(VENDOR_FILES)) {
      for (const f of files) {
        const res = await app.inject({ url: `/vendor/${pkg}/${f}` });
        assert.equal(res.statusCode, 200, `/vendor/${pkg}/${f}`);
        assert.equal(res.headers['content-type'], types[f.split('.').pop()!], f);
        assert.ok(res.rawPayload.equals(readFileSync(join(ROOT, 'node_modules', pkg, f))), `${pkg}/${f} is the installed file`);
      }
    }
  });

  it('every import of every dashboard module resolves to a served file (import map included)', async () => {
    const index = (await app.inject({ url: '/' })).body;
    const imports = JSON.parse(/<script type="importmap">([\s\S]*?)<\/script>/.exec(index)![1]!).imports as Record<string, string>;
    for (const url of Object.values(imports)) assert.equal((await app.inject({ url })).statusCode, 200, url);
    const mods = modules();
    assert.ok(mods.includes('app.js'));
    for (const m of mods) {
      const src = readFileSync(join(DASHBOARD_DIR, m), 'utf8');
      for (const [, spec] of src.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)) {
        const url = spec!.startsWith('.') ? posix.join('/', posix.dirname(m), spec!) : imports[spec!];
        assert.ok(url, `${m} imports ${spec}, which the import map does not name`);
        const res = await app.inject({ url });
        assert.equal(res.statusCode, 200, `${m} imports ${spec} (${url})`);
        assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
      }
    }
    for (const [, href] of index.matchAll(/(?:href|src)="(\/[^"]*)"/g)) assert.equal((await app.inject({ url: href! })).statusCode, 200, href);
    const preloaded = [...index.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((m) => m[1]).sort();
    assert.deepEqual(preloaded, [...mods.map((m) => `/${m}`), ...Object.values(imports)].sort(), 'index.html preloads every module, and only modules');
  });

  it('answers a matching If-None-Match with 304 and tells the browser to revalidate', async () => {
    const first = await app.inject({ url: '/app.js' });
    assert.equal(first.headers['cache-control'], 'private, no-cache');
    const etag = String(first.headers.etag);
    assert.match(etag, /^"[A-Za-z0-9_-]{22}"$/);
    const again = await app.inject({ url: '/app.js', headers: { 'if-none-match': `"other", ${etag}` } });
    assert.equal(again.statusCode, 304);
    assert.equal(again.body, '');
    assert.equal((await app.inject({ url: '/app.js', headers: { 'if-none-match': '"other"' } })).statusCode, 200);
    const head = await app.inject({ method: 'HEAD', url: '/style.css' });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-type'], 'text/css; charset=utf-8');
  });

  it('serves nothing outside the whitelist, however the path is spelled', async () => {
    for (const url of [
      '/vendor/preact/package.json', '/vendor/../package.json', '/vendor/preact/dist/../../../package.json',
      '/%2e%2e/package.json', '/vendor/preact/%2e%2e/%2e%2e/package.json', '/vendor/preact/dist/..%2f..%2fpackage.json',
      '/lib/../../http/static.ts', '/..%5c..%5cpackage.json', '/manager/http/static.ts', '/vendor/', '/vendor/uplot/',
      '/lib/', '/.gitignore', '/vendor/uplot/dist/uPlot.cjs.js', '/index.html/', '/app.js%00.html',
    ]) {
      const res = await app.inject({ url });
      assert.ok(res.statusCode === 404 || res.statusCode === 400, `${url} answered ${res.statusCode}`);
      assert.doesNotMatch(res.body, /"name":\s*"(trustroll|preact)"|registerDashboard/, url);
    }
  });
});
