/**
 * A property test over every route of the operator API: whatever the path
 * parameters, query and body (hostile numbers, wrong types, junk, deep
 * nesting, non-objects), the answer is never a 5xx, every error is in the
 * one shape `{"error":{"code","message"}}` with a stable E_ code, and no
 * internal detail (SQLite, Fastify codes, stacks) reaches the client. Runs
 * the real HTTP server in-process (requests injected) on a manager service
 * with a fleet of agents over the embedded broker.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { buildHttpServer } from '../../manager/http/server.ts';
import { OperatorPki } from '../../manager/pki/operator-pki.ts';
import { ManagerService } from '../../manager/service/manager-service.ts';
import { mqttFleets } from '../support/mqtt-fleets.ts';

const TOKEN = 'property-test-token';
/** Values a hostile client puts where numbers, strings or ids go. */
const HOSTILE = ['Infinity', '-Infinity', '1e400', '-1e400', 'NaN', '-0', '0x10', '1e-7', '9007199254740993', '-1', '0', '', ' ', 'null', 'true', '[]', '{}',
  '%00', '\u0000', '../../etc/passwd', '%2e%2e%2f', "' OR 1=1 --", '<script>', 'a'.repeat(5000), '\uD800', 'printer-1', 'six-step', 'asc', 'desc'];

/** Percent-encode, or send a lone surrogate's raw UTF-8 bytes (encodeURIComponent refuses it). */
const enc = (s: string): string => { try { return encodeURIComponent(s); } catch { return '%ED%A0%80'; } };

/** Numbers as text that a validator may turn into ±∞, an unsafe integer or something out of range. */
const NUMBERS = ['Infinity', '-Infinity', '1e400', '-1e400', '1e300', '-1e300', '9007199254740993', '-9007199254740993', '1e15', '-1', '0x10', '1e-7'];

interface Schema { type?: string | string[]; properties?: Record<string, Schema>; enum?: unknown[]; anyOf?: Schema[]; oneOf?: Schema[] }

/** A JSON text value: hostile literals JSON.stringify cannot write (1e400), or any JSON value. */
const jsonValue: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...NUMBERS), fc.constantFrom(...NUMBERS).map((n) => JSON.stringify(n)),
  fc.constantFrom('1e400', '-1e400', '1e308', '-0', '9007199254740993', '0.5', 'null', 'true', '[]', '{}', '""', '"Infinity"', '[1e400]', '{"a":{"b":{"c":[[[[[[]]]]]]}}}'),
  fc.constantFrom(...HOSTILE).map((s) => JSON.stringify(s)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.integer().map(String), fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
);

/** A body: an object over the schema's own fields (and strangers), or something that is not an object at all. */
function bodyFor(schema: Schema | undefined): fc.Arbitrary<string> {
  const keys = Object.keys(schema?.properties ?? {});
  const field = fc.tuple(keys.length ? fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 8 })) : fc.string({ maxLength: 8 }), jsonValue);
  return fc.oneof(
    { weight: 5, arbitrary: fc.array(field, { maxLength: 5 }).map((fs) => `{${fs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`) },
    { weight: 1, arbitrary: fc.oneof(jsonValue, fc.constantFrom('', '{', '{"a":', 'x=1&y=2', '\u0000')) },
  );
}

/** A query string over the schema's fields (and strangers), hostile values percent-encoded or raw. */
function queryFor(schema: Schema | undefined): fc.Arbitrary<string> {
  const keys = Object.keys(schema?.properties ?? {});
  const value = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...NUMBERS).map(enc) }, { weight: 2, arbitrary: fc.constantFrom(...HOSTILE).map(enc) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map(enc) }, { weight: 1, arbitrary: fc.integer().map(String) }, { weight: 1, arbitrary: fc.constantFrom('%E0%A4%A', '%', '%zz', '1&1', '') },
  );
  const key = keys.length ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...keys) }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }).map(enc) }) : fc.string({ maxLength: 6 }).map(enc);
  return fc.array(fc.tuple(key, value), { maxLength: 5 }).map((kv) => kv.length ? `?${kv.map(([k, v]) => `${k}=${v}`).join('&')}` : '');
}

/** A path parameter: an id, hostile text, over-long, or a malformed percent-encoding. */
const param = fc.oneof(fc.constantFrom('printer-1', 'console-1', 'nope', 'a'.repeat(101), '%E0%A4%A', '%2F..%2F', '%00', '..', 'r-1'), fc.string({ minLength: 1, maxLength: 30 }).map(enc));

describe('operator API: no input yields a 5xx, every error in the one shape (property test over every route)', function () {
  this.timeout(300_000);
  const fleets = mqttFleets();
  let service: ManagerService | null = null;
  let app: FastifyInstance | null = null;
  let dir = '';
  afterEach(async () => {
    await app?.close();
    await service?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers every generated request below 500, in the one error shape, with nothing internal in it', async () => {
    const fleet = await fleets.create({ servers: 1, clients: 2, broker: 'embedded' });
    await fleet.stopManager();
    service = await ManagerService.start({ dataDir: fleet.dir, pki: fleet.pki, brokerUrl: fleet.url, logger: fleet.logger, policy: { ackTimeoutMs: 3000, sweepIntervalMs: 50 } });
    dir = mkdtempSync(join(tmpdir(), 'trustroll-api-prop-'));
    fleet.pki.save(dir);
    const ops = await OperatorPki.openOrCreate(dir, new Date());
    const tls = ops.httpsIdentity({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now: new Date() });
    const routes: RouteOptions[] = [];
    const svc = service;
    app = await buildHttpServer({
      service: svc, logger: fleet.logger, tls: { ...tls, operatorCa: ops.ca }, mgmtCa: fleet.pki.ca,
      auth: { revoked: () => new Set(), token: () => null, localToken: TOKEN }, broker: () => svc.brokerView(),
      onRoute: (r) => { if (typeof r.url === 'string' && (r.url.startsWith('/api/') || r.url === '/metrics')) routes.push(r); },
    });
    await app.ready();
    // The event stream never ends; it has no input to vary.
    const walked = routes.filter((r) => r.url !== '/api/events' && r.method !== 'HEAD');
    assert.ok(walked.length >= 15, `the API's routes were found (${walked.map((r) => `${String(r.method)} ${r.url}`).join(', ')})`);
    const seen = new Map<string, Set<number>>();
    for (const route of walked) {
      const method = String(route.method);
      const schema = route.schema as { querystring?: Schema; body?: Schema } | undefined;
      await fc.assert(fc.asyncProperty(param, queryFor(schema?.querystring), bodyFor(schema?.body), fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded'), async (p, q, body, type) => {
        const url = route.url.replace(/:[a-zA-Z]+/g, p) + q;
        const res = await app!.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${TOKEN}`, ...(method === 'GET' ? {} : { 'content-type': type }) }, ...(method === 'GET' ? {} : { payload: body }) });
        (seen.get(`${method} ${route.url}`) ?? seen.set(`${method} ${route.url}`, new Set()).get(`${method} ${route.url}`)!).add(res.statusCode);
        assert.ok(res.statusCode < 500, `${method} ${url.slice(0, 200)} ${body.slice(0, 200)} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
        if (res.statusCode >= 400) {
          const json = JSON.parse(res.body) as { error: { code: string; message: string } };
          assert.deepEqual(Object.keys(json), ['error']);
          assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message']);
          assert.match(json.error.code, /^E_[A-Z0-9_]+$/);
          assert.doesNotMatch(res.body, /SQLITE|FST_|statusCode|\bat [\w.]+ \(|node_modules/);
        }
      }), { numRuns: method === 'GET' ? 300 : 150, seed: 21 });
    }
    // The generators reach past validation: some requests of each mutating route are refused for what they ask, not only their shape.
    const statuses = [...seen.values()].flatMap((s) => [...s]);
    assert.ok(statuses.includes(200) && statuses.includes(400) && statuses.includes(415) && statuses.includes(414), `statuses seen: ${JSON.stringify([...seen].map(([k, v]) => [k, [...v]]))}`);
  });
});
