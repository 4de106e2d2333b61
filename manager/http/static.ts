/**
 * Serves the dashboard: the files under manager/dashboard/ at `/` (index.html
 * also at `/`), and a fixed list of browser libraries from node_modules at
 * `/vendor/<package>/<path>` (the manager often has no internet, so nothing
 * comes from a CDN). Every file is read once at registration and gets one
 * exact route: there is no wildcard and no path from the request ever reaches
 * the file system, so `..`, encoded or not, cannot escape. Authentication is
 * the surrounding server's job; this plugin adds none.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The vendored libraries: package name and the files of it the browser may load. */
export const VENDOR_FILES: Readonly<Record<string, readonly string[]>> = {
  preact: ['dist/preact.mjs', 'dist/preact.mjs.map', 'hooks/dist/hooks.mjs', 'hooks/dist/hooks.mjs.map'],
  htm: ['dist/htm.mjs', 'preact/index.mjs'],
  uplot: ['dist/uPlot.esm.js', 'dist/uPlot.min.css'],
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
};

/** Where the dashboard's files live (next to this folder). */
export const DASHBOARD_DIR = join(dirname(dirname(fileURLToPath(import.meta.url))), 'dashboard');

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
  headers: Record<string, string>;
}

/**
 * Registers one GET (and HEAD) route per dashboard and vendored file.
 * Throws at start-up, naming the file, when a vendored library is missing.
 */
export function registerDashboard(app: FastifyInstance): void {
  const files = new Map<string, StaticFile>();
  for (const rel of listFiles(DASHBOARD_DIR, '')) {
    const body = readFileSync(join(DASHBOARD_DIR, rel));
    files.set(`/${rel}`, staticFile(rel, body, rel.endsWith('.html') ? htmlHeaders(body) : {}));
  }
  const index = files.get('/index.html');
  if (index === undefined) throw new Error(`dashboard: ${join(DASHBOARD_DIR, 'index.html')} is missing; reinstall trustroll`);
  files.set('/', index);
  for (const [pkg, paths] of Object.entries(VENDOR_FILES)) {
    const root = packageRoot(pkg);
    for (const p of paths) {
      const file = join(root, p);
      if (!existsSync(file)) throw new Error(`dashboard: ${file} (npm package ${pkg}) is missing; run npm ci`);
      files.set(`/vendor/${pkg}/${p}`, staticFile(p, readFileSync(file), {}));
    }
  }
  for (const [url, file] of files) {
    app.get(url, (req, reply) => send(req, reply, file));
  }
}

function send(req: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  reply.headers({
    'content-type': file.type,
    etag: file.etag,
    // Revalidate every time: the files change with the installed version, and
    // a 304 on the LAN costs less than a dashboard mixing two versions.
    'cache-control': 'private, no-cache',
    'x-content-type-options': 'nosniff',
    ...file.headers,
  });
  const match = req.headers['if-none-match'];
  if (match !== undefined && match.split(',').some((t) => t.trim() === file.etag)) return reply.code(304).send();
  return reply.send(file.body);
}

function staticFile(name: string, body: Buffer, headers: Record<string, string>): StaticFile {
  const type = CONTENT_TYPES[extname(name)];
  if (type === undefined) throw new Error(`dashboard: no content type for ${name}`);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, type, etag, headers };
}

/**
 * The page's security headers: scripts only from this origin plus the inline
 * import map (by hash), styles and data only from this origin, no framing.
 */
function htmlHeaders(body: Buffer): Record<string, string> {
  const inline = [...body.toString('utf8').matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)]
    .map((m) => `'sha256-${createHash('sha256').update(m[1] ?? '').digest('base64')}'`);
  return {
    'content-security-policy': [
      "default-src 'none'", `script-src 'self' ${inline.join(' ')}`.trim(), "style-src 'self'", "img-src 'self' data:",
      "connect-src 'self'", "manifest-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ].join('; '),
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };
}

/** Regular files under dir (no dot files, no symbolic links), as paths relative to it. */
function listFiles(dir: string, rel: string): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.'))
    .flatMap((e) => e.isDirectory() ? listFiles(dir, rel ? `${rel}/${e.name}` : e.name)
      : e.isFile() && CONTENT_TYPES[extname(e.name)] !== undefined ? [rel ? `${rel}/${e.name}` : e.name] : [])
    .sort();
}

/** The folder of an installed npm package, found the way Node finds it (without its exports map). */
function packageRoot(pkg: string): string {
  const require = createRequire(import.meta.url);
  for (const dir of require.resolve.paths(pkg) ?? []) {
    if (existsSync(join(dir, pkg, 'package.json'))) return join(dir, pkg);
  }
  throw new Error(`dashboard: npm package ${pkg} is not installed; run npm ci`);
}
