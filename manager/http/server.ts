/**
 * The manager's HTTPS server: TLS with the manager's HTTPS certificate,
 * client certificates requested under the operator CA (browsers log in
 * with them), bearer tokens for scripts, one error shape with stable codes,
 * the API routes, live updates by Server-Sent Events, the Prometheus
 * endpoint and the dashboard's files. Listens on loopback unless told
 * otherwise.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../protocol/log.ts';
import { ManagerError, type ManagerErrorCode } from '../errors.ts';
import type { BrokerView, LiveEvent, Me } from './api-types.ts';
import { authenticate, type AuthSources } from './auth.ts';
import { buildMetrics } from './metrics.ts';
import { me, registerRoutes } from './routes.ts';
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
}

const STATUS: Partial<Record<ManagerErrorCode, number>> = {
  E_AUTH_REQUIRED: 401, E_FORBIDDEN: 403, E_BAD_REQUEST: 400, E_NOT_FOUND: 404,
  E_DEVICE_UNKNOWN: 404, E_ROTATION_UNKNOWN: 404,
  E_ROTATION_ACTIVE: 409, E_ROTATION_STATE: 409, E_DEVICE_DONE: 409, E_FLEET_EMPTY: 409, E_RENEWAL_NOT_LONGER: 409, E_ALGORITHM_UNVERIFIABLE: 409, E_AGENT_OUTDATED: 409, E_ROOT_SIDE: 409,
};

/** Build (not yet listening) the HTTPS server. */
export async function buildHttpServer(o: HttpServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    https: { cert: o.tls.cert, key: o.tls.key, ca: o.tls.operatorCa, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    logger: false, bodyLimit: 64 * 1024, ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  });
  const log = o.logger.child({ component: 'http' });

  app.addHook('onRequest', async (req) => {
    if (req.url === '/healthz') return;
    (req as FastifyRequest & { me: Me }).me = authenticate(req, o.auth);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (req.method !== 'GET' || reply.statusCode >= 400) {
      log.info('http request', { method: req.method, url: req.url.split('?')[0], status: reply.statusCode, actor: (req as FastifyRequest & { me?: Me }).me?.name ?? null, ms: Math.round(reply.elapsedTime) });
    }
  });

  app.setErrorHandler((err: FastifyError | ManagerError, req, reply) => {
    if (err instanceof ManagerError) {
      const status = STATUS[err.code] ?? 500;
      if (status === 401 && !req.url.startsWith('/api') && req.url !== '/metrics') return sendLoginPage(reply, err);
      return reply.code(status).send({ error: { code: err.code, message: withoutCode(err.message) } });
    }
    const fe = err as FastifyError;
    if (fe.validation || (fe.statusCode && fe.statusCode < 500)) {
      return reply.code(fe.statusCode ?? 400).send({ error: { code: 'E_BAD_REQUEST', message: fe.message } });
    }
    log.error('request failed', { url: req.url, reason: fe.message, code: (fe as { code?: string }).code });
    return reply.code(500).send({ error: { code: (fe as { code?: string }).code ?? 'E_INTERNAL', message: withoutCode(fe.message) } });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'E_NOT_FOUND', message: `${req.method} ${req.url.split('?')[0]}` } }));

  app.get('/healthz', async () => ({ ok: true, mqtt: o.service.m.transport.connected }));

  const metrics = buildMetrics(o.service);
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));

  app.get('/api/events', (req, reply) => streamEvents(req, reply, o.service, o.heartbeatMs ?? 15_000));

  registerRoutes(app, o.service, { broker: o.broker, operatorCa: o.tls.operatorCa, mgmtCa: o.mgmtCa });
  registerDashboard(app);
  return app;
}

/** Server-Sent Events: every live event of the service, with a heartbeat comment. */
function streamEvents(req: FastifyRequest, reply: FastifyReply, service: ManagerService, heartbeatMs: number): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(`: trustroll live events for ${me(req).name}\nretry: 2000\n\n`);
  const send = (e: LiveEvent) => res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  send({ type: 'fleet', counts: service.fleet.counts(), changed: [] });
  service.on('live', send);
  const beat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
  const stop = () => {
    clearInterval(beat);
    service.off('live', send);
  };
  req.raw.on('close', stop);
  res.on('error', stop);
}

/** A browser without an operator certificate gets a page that says what to do. */
function sendLoginPage(reply: FastifyReply, err: ManagerError): FastifyReply {
  return reply.code(401).type('text/html; charset=utf-8').send(`<!doctype html><meta charset="utf-8"><title>trustroll: sign in</title>
<body style="font-family:system-ui;max-width:40em;margin:4em auto">
<h1>trustroll manager</h1><p>This dashboard needs an operator certificate.</p>
<p>Ask an administrator to run <code>trustroll mgmt operator --dir &lt;mgmt&gt; --name &lt;you&gt; --role read|admin</code>,
import the <code>.p12</code> file it writes into your browser, and reload.</p><p><small>${escapeHtml(err.code)}</small></p></body>`);
}

/** The message without the `E_CODE: ` prefix typed errors carry (the code is its own field). */
function withoutCode(message: string): string {
  return message.replace(/^E_[A-Z0-9_]+: /, '');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
