/**
 * The manager's HTTPS server: TLS with the manager's HTTPS certificate,
 * client certificates requested under the operator CA (browsers log in
 * with them), bearer tokens for scripts, one error shape with stable codes,
 * the API routes, live updates by Server-Sent Events, the Prometheus
 * endpoint and the dashboard's files. Listens on loopback unless told
 * otherwise.
 */
import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify';
import type { Logger } from '../../protocol/log.ts';
import type { BrokerView, LiveEvent, Me } from './api-types.ts';
import { authenticate, claimedName, type AuthSources } from './auth.ts';
import { DeniedAudit } from './denied-audit.ts';
import { errorAnswer, sendError, type ErrorAnswer } from './error-reply.ts';
import { buildMetrics } from './metrics.ts';
import { OpenConnections } from './open-connections.ts';
import { requireJsonBody, requireObjectBody, requireSameOrigin } from './request-guard.ts';
import { me, registerRoutes } from './routes.ts';
import { requireFiniteNumbers } from './finite-numbers.ts';
import { addSecurityHeaders, HSTS } from './security-headers.ts';
import { registerDashboard } from './static.ts';
import type { ManagerService } from '../service/manager-service.ts';

/** How the HTTPS server is set up. */
export interface HttpServerOptions {
  service: ManagerService;
  logger: Logger;
  tls: { cert: string; key: string; operatorCa: string };
  mgmtCa: string;
  auth: AuthSources;
  broker: () => BrokerView;
  /** Keep-alive comment interval on event streams (default 15 s). */
  heartbeatMs?: number;
  /** How often open connections' credentials are re-checked against revocation (default 1 s). */
  revalidateMs?: number;
  /** Told of every route as it is registered, with its schema (the API's property test walks them). */
  onRoute?: (route: RouteOptions) => void;
}

/** Statuses recorded in the audit log as refused requests. */
const DENIED: ReadonlySet<number> = new Set([401, 403, 415]);

/** Build (not yet listening) the HTTPS server. */
export async function buildHttpServer(o: HttpServerOptions): Promise<FastifyInstance> {
  const log = o.logger.child({ component: 'http' });
  const app = Fastify({
    https: { cert: o.tls.cert, key: o.tls.key, ca: o.tls.operatorCa, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    logger: false, bodyLimit: 64 * 1024, routerOptions: { maxParamLength: 100 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    // Router-level failures (bad percent-encoding, over-long path parameter) answer in the one error shape too.
    frameworkErrors: (err, req, reply) => { void answer(req, reply, errorAnswer(err, log, req)); },
  });
  if (o.onRoute) app.addHook('onRoute', o.onRoute);
  const open = new OpenConnections(log, o.revalidateMs ?? 1000);
  const denied = new DeniedAudit((e) => o.service.audit(e), () => Date.now());
  app.addHook('onClose', async () => {
    open.close();
    denied.flush();
  });

  app.addHook('onRequest', async (req) => {
    if (req.url === '/healthz') return;
    const auth = authenticate(req, o.auth);
    (req as FastifyRequest & { me: Me }).me = auth.me;
    open.track(req.raw.socket, auth.me.name, auth.stillValid);
    requireSameOrigin(req);
    requireJsonBody(req);
  });
  app.addHook('preValidation', async (req) => requireObjectBody(req));
  app.addHook('preHandler', async (req) => requireFiniteNumbers(req));
  app.addHook('onSend', async (_req, reply, payload) => {
    addSecurityHeaders(reply);
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    if (req.method !== 'GET' || reply.statusCode >= 400) {
      log.info('http request', { method: req.method, url: req.url.split('?')[0], status: reply.statusCode, actor: (req as FastifyRequest & { me?: Me }).me?.name ?? null, ms: Math.round(reply.elapsedTime) });
    }
  });

  /** Send an error answer (the login page to a browser without a credential) and audit it when it refuses. */
  function answer(req: FastifyRequest, reply: FastifyReply, a: ErrorAnswer, err?: unknown): FastifyReply {
    if (DENIED.has(a.status)) {
      const who = (req as FastifyRequest & { me?: Me }).me?.name ?? (err ? claimedName(err) : undefined) ?? 'anonymous';
      try {
        denied.record({ actor: who, method: req.method, route: req.url.split('?')[0]!, status: a.status, code: a.code, reason: a.message, remote: req.ip });
      } catch (e) {
        log.error('could not audit a refused request', { reason: (e as Error).message });
      }
    }
    if (a.status === 401 && !req.url.startsWith('/api') && req.url !== '/metrics') return sendLoginPage(reply, a.code);
    return sendError(reply, a);
  }

  app.setErrorHandler((err, req, reply) => answer(req, reply, errorAnswer(err, log, req), err));
  app.setNotFoundHandler((req, reply) => sendError(reply, { status: 404, code: 'E_NOT_FOUND', message: `${req.method} ${req.url.split('?')[0]!.slice(0, 200)}` }));

  app.get('/healthz', async () => ({ ok: true, mqtt: o.service.m.transport.connected }));

  const metrics = buildMetrics(o.service);
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));

  // Open event streams end when the server closes (else close() would wait for them for ever).
  const streams = new Set<FastifyReply['raw']>();
  app.addHook('preClose', async () => { for (const res of streams) res.end(); });
  app.get('/api/events', (req, reply) => streamEvents(req, reply, o.service, o.heartbeatMs ?? 15_000, streams));

  registerRoutes(app, o.service, { broker: o.broker, operatorCa: o.tls.operatorCa, mgmtCa: o.mgmtCa });
  registerDashboard(app);
  return app;
}

/** Server-Sent Events: every live event of the service, with a heartbeat comment. */
function streamEvents(req: FastifyRequest, reply: FastifyReply, service: ManagerService, heartbeatMs: number, streams: Set<FastifyReply['raw']>): void {
  reply.hijack();
  const res = reply.raw;
  streams.add(res);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no', 'x-content-type-options': 'nosniff', 'strict-transport-security': HSTS });
  res.write(`: trustroll live events for ${me(req).name}\nretry: 2000\n\n`);
  const send = (e: LiveEvent) => res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  send({ type: 'fleet', counts: service.fleet.counts(), changed: [] });
  service.on('live', send);
  const beat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
  const stop = () => {
    clearInterval(beat);
    service.off('live', send);
    streams.delete(res);
  };
  req.raw.on('close', stop);
  res.on('error', stop);
}

/** The login page's one style sheet, allowed by its hash (no inline style attributes). */
const LOGIN_STYLE = 'body{font-family:system-ui;max-width:40em;margin:4em auto}';
const LOGIN_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(LOGIN_STYLE).digest('base64')}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

/** A browser without an operator certificate gets a page that says what to do. */
function sendLoginPage(reply: FastifyReply, code: string): FastifyReply {
  return reply.code(401).type('text/html; charset=utf-8').header('content-security-policy', LOGIN_CSP).send(`<!doctype html><meta charset="utf-8"><title>trustroll: sign in</title><style>${LOGIN_STYLE}</style>
<body>
<h1>trustroll manager</h1><p>This dashboard needs an operator certificate.</p>
<p>Ask an administrator to run <code>trustroll mgmt operator --dir &lt;mgmt&gt; --name &lt;you&gt; --role read|admin</code>,
import the <code>.p12</code> file it writes into your browser, and reload.</p><p><small>${escapeHtml(code)}</small></p></body>`);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
