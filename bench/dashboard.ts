/**
 * Dashboard benchmark: a real `trustroll serve` (child process, embedded
 * broker) with 10,000 devices enrolled directly into its database under its
 * own CA; then the fleet API over HTTPS with an operator certificate (p50/p99
 * over 200+ requests with assorted filters, sorts and pages), the fleet
 * page in Chromium (first contentful paint, first rows visible, a search
 * answered), and the service's RSS with the fleet idle. Prints one JSON
 * object. Targets: API p99 < 100 ms, first paint of the fleet view < 1 s.
 *
 * Run: npx tsx bench/dashboard.ts [devices, default 10000]
 */
import 'reflect-metadata';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CaAuthority } from '../manager/pki/ca-authority.ts';
import { FleetDb } from '../manager/fleet/fleet-db.ts';
import type { FleetPage } from '../manager/http/api-types.ts';
import { latencySummary, percentile, round } from './stats.ts';

const DEVICES = Number(process.argv[2] ?? 10_000);
const REQUESTS = 240;
const PAGE_LOADS = 5;
const root = dirname(dirname(fileURLToPath(import.meta.url)));
const cli = join(root, 'bin', 'trustroll.mjs');
const dir = mkdtempSync(join(tmpdir(), 'trustroll-bench-dashboard-'));
const data = join(dir, 'data');
const mgmt = join(dir, 'mgmt');
const ops = join(dir, 'operators');

function trustroll(...args: string[]): string {
  return execFileSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    }).on('error', reject);
  });
}

/** Enroll `n` devices (one server in five) with their own P-256 keys, in one transaction. */
async function enroll(n: number): Promise<number> {
  const t = performance.now();
  const ca = await CaAuthority.openOrInit(join(data, 'ca'), { subject: 'unused', now: new Date() });
  const db = new FleetDb(join(data, 'manager.db'));
  try {
    db.tx(() => {
      for (let i = 0; i < n; i++) {
        const role = i % 5 === 0 ? 'server' : 'client';
        const id = role === 'server' ? `printer-${i}` : `console-${i}`;
        const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
        db.addDevice({ id, role, commonName: id, spki, certificate: ca.issueLeaf({ commonName: id, spki, role }, new Date()) });
      }
    });
  } finally {
    db.close();
  }
  return performance.now() - t;
}

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024, 0) : NaN;
}

async function startService(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [cli, 'serve', '--data', data, '--mgmt', mgmt, '--broker', 'embedded',
    '--embedded-port', String(await freePort()), '--listen', '127.0.0.1:0', '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const deadline = Date.now() + 60_000;
  const file = join(data, 'service.json');
  while (!existsSync(file)) {
    if (child.exitCode !== null) throw new Error(`trustroll serve exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`trustroll serve did not write ${file} within 60 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url: (JSON.parse(readFileSync(file, 'utf8')) as { url: string }).url };
}

/** GET `path`; resolves with the time to the last byte and the parsed body. */
function get<T>(agent: Agent, url: string, path: string): Promise<{ ms: number; body: T }> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    request(new URL(path, url), { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`${path}: ${res.statusCode} ${text.slice(0, 200)}`));
        resolve({ ms: performance.now() - t, body: JSON.parse(text) as T });
      });
    }).on('error', reject).end();
  });
}

const QUERIES = [
  '/api/fleet', '/api/fleet?limit=500', '/api/fleet?offset=9800&limit=100', '/api/fleet?q=printer-77', '/api/fleet?q=9',
  '/api/fleet?role=server', '/api/fleet?presence=unknown', '/api/fleet?status=pending', '/api/fleet?sort=certNotAfter',
  '/api/fleet?sort=since&role=client&offset=4000', '/api/fleet?sort=step&q=console', '/api/fleet?presence=online',
];

async function apiTimings(url: string, cert: string, key: string, ca: string) {
  const agent = new Agent({ cert, key, ca, keepAlive: true, maxSockets: 1 });
  const byQuery = new Map<string, number[]>(QUERIES.map((q) => [q, []]));
  for (const q of QUERIES) await get(agent, url, q); // warm-up: JIT and the first page build
  for (let i = 0; i < REQUESTS; i++) {
    const q = QUERIES[i % QUERIES.length]!;
    byQuery.get(q)!.push((await get<FleetPage>(agent, url, q)).ms);
  }
  const sample = (await get<FleetPage>(agent, url, '/api/fleet')).body;
  agent.destroy();
  const all = [...byQuery.values()].flat();
  return {
    requests: all.length, ...latencySummary(all), fleetTotal: sample.counts.devices,
    perQuery: Object.fromEntries([...byQuery].map(([q, ms]) => [q, { p50Ms: round(percentile(ms, 50), 1), p99Ms: round(percentile(ms, 99), 1) }])),
  };
}

/** Page scripts (strings: this project's TypeScript has no DOM types). */
const FIRST_ROWS_PROBE = `new MutationObserver((_m, obs) => {
  if (document.querySelector('.fleet-table tbody tr')) { window.__firstRows = performance.now(); obs.disconnect(); }
}).observe(document, { childList: true, subtree: true });`;
const LOAD_TIMES = `({
  fcpMs: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
  firstRowsMs: window.__firstRows,
  domContentLoadedMs: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
})`;

/** Fleet page loads in Chromium: first contentful paint, first rows in the table, and a search answered. */
async function pageTimings(url: string, auth: { clientCertificates: { origin: string; certPath: string; keyPath: string }[] } | { extraHTTPHeaders: Record<string, string> }) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ ...auth, ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    await context.addInitScript({ content: FIRST_ROWS_PROBE });
    const loads: { fcpMs: number; firstRowsMs: number; domContentLoadedMs: number }[] = [];
    for (let i = 0; i < PAGE_LOADS; i++) {
      const page = await context.newPage();
      await page.goto(`${url}/#/fleet`);
      await page.waitForSelector('.fleet-table tbody tr');
      loads.push(await page.evaluate(LOAD_TIMES) as (typeof loads)[number]);
      await page.close();
    }
    const page = await context.newPage();
    await page.goto(`${url}/#/fleet`);
    await page.waitForSelector('.fleet-table tbody tr');
    const rows = await page.locator('.fleet-table tbody tr').count();
    const t = Date.now();
    await page.fill('input[name=q]', `printer-${5 * Math.floor((DEVICES - 1) / 5)}`);
    // A function, not a string: the dashboard's CSP forbids eval in the page.
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('.fleet-table tbody tr').length === 1);
    const searchMs = Date.now() - t;
    await page.close();
    const med = (k: keyof (typeof loads)[number]) => round(percentile(loads.slice(1).map((l) => l[k]), 50), 0);
    return {
      rowsRendered: rows,
      cold: { fcpMs: round(loads[0]!.fcpMs, 0), firstRowsMs: round(loads[0]!.firstRowsMs, 0), domContentLoadedMs: round(loads[0]!.domContentLoadedMs, 0) },
      warmMedian: { fcpMs: med('fcpMs'), firstRowsMs: med('firstRowsMs'), domContentLoadedMs: med('domContentLoadedMs') },
      searchAnsweredMs: searchMs, searchNote: 'typing to the one matching row, including the 250 ms debounce',
    };
  } finally {
    await browser.close();
  }
}

let service: { child: ChildProcess; url: string } | null = null;
try {
  trustroll('ca', 'init', '--data', data, '--subject', 'CN=Bench Printer Fleet Root,O=trustroll bench');
  trustroll('mgmt', 'init', '--dir', mgmt);
  trustroll('mgmt', 'operator', '--dir', mgmt, '--name', 'bench', '--role', 'admin', '--out', ops);
  const enrollMs = await enroll(DEVICES);
  const token = trustroll('token', 'create', '--data', data, '--name', 'bench-browser', '--role', 'read').trim();
  const startT = performance.now();
  service = await startService();
  const startMs = performance.now() - startT;
  await new Promise((r) => setTimeout(r, 2_000));
  const rssIdleMB = rssMB(service.child.pid!);
  const certPath = join(ops, 'bench.pem');
  const keyPath = join(ops, 'bench.key');
  const api = await apiTimings(service.url, readFileSync(certPath, 'utf8'), readFileSync(keyPath, 'utf8'), readFileSync(join(mgmt, 'operator-ca.pem'), 'utf8'));
  // Playwright presents client certificates through a TLS proxy of its own in this process, which
  // adds latency a browser with an imported .p12 does not have; a read token over Chromium's own
  // TLS measures the page as an operator sees it. Both are reported.
  const page = {
    operatorCertificate: await pageTimings(service.url, { clientCertificates: [{ origin: service.url, certPath, keyPath }] }),
    bearerTokenNativeTls: await pageTimings(service.url, { extraHTTPHeaders: { authorization: `Bearer ${token}` } }),
  };
  await new Promise((r) => setTimeout(r, 2_000));
  const rssAfterMB = rssMB(service.child.pid!);
  process.stdout.write(JSON.stringify({
    bench: 'dashboard', at: new Date().toISOString(), node: process.version, cpus: cpus().length, loadAverage1m: round(loadavg()[0]!, 1), devices: DEVICES,
    setup: { enrollMs: round(enrollMs, 0), serviceStartMs: round(startMs, 0) },
    fleetApi: api,
    fleetPage: page,
    managerRssMB: { idle: rssIdleMB, afterBench: rssAfterMB, note: 'trustroll serve alone (child process, embedded broker, devices enrolled, none connected)' },
    targets: {
      apiP99Ms: 100, apiP99Met: api.p99Ms < 100, fleetFirstPaintMs: 1000,
      firstPaintMet: Object.fromEntries(Object.entries(page).map(([k, p]) => [k, p.cold.fcpMs < 1000 && p.cold.firstRowsMs < 1000])),
    },
  }, null, 2) + '\n');
} finally {
  if (service && service.child.exitCode === null) {
    const exited = new Promise((r) => service!.child.once('exit', r));
    service.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (service.child.exitCode === null) service.child.kill('SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
}
