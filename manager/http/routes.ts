/**
 * The API routes (see api-types.ts for the shapes). Reads need any
 * authenticated operator; actions need an admin and are recorded in the
 * audit log with who made them. Every body and query has a JSON Schema.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { deviceSequence } from '../../protocol/schedule.ts';
import { SCHEDULES } from '../../protocol/steps.ts';
import { ManagerError } from '../errors.ts';
import type { AuditPage, BrokerView, CertificatesView, DeviceDetail, FleetQuery, Me, ScheduleView, SchedulerView, StepView } from './api-types.ts';
import { requireAdmin } from './auth.ts';
import { phaseRows, phaseSchedule } from '../rotation/phase.ts';
import type { ManagerService } from '../service/manager-service.ts';
import { toEntry } from '../service/audit-view.ts';
import { certInfo, computeWaits, rotationDetail, rotationSummary, rotationTimeline } from '../service/rotation-view.ts';
import { certificatesView } from '../service/certificates-view.ts';
import { CA_KEY_ALGORITHMS, type CaKeyAlgorithm } from '../ca/keys.ts';

const id = { type: 'string', minLength: 1, maxLength: 128 } as const;
const rotationParams = { type: 'object', required: ['id'], properties: { id }, additionalProperties: false } as const;
/** The body of an action that takes no arguments: `{}` (a JSON object is required of every state-changing request). */
const noBody = { type: 'object', additionalProperties: false, maxProperties: 0 } as const;
/** A sequence number of the audit log. */
const seq = { type: 'integer', maximum: Number.MAX_SAFE_INTEGER } as const;

/** The authenticated operator of a request (set by the server's auth hook). */
export function me(req: FastifyRequest): Me {
  return (req as FastifyRequest & { me: Me }).me;
}

/** Register every /api route. */
export function registerRoutes(app: FastifyInstance, service: ManagerService, extra: { broker: () => BrokerView; operatorCa: string; mgmtCa: string }): void {
  const db = service.m.db;

  app.get('/api/me', async (req) => me(req));

  app.get('/api/fleet', {
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          offset: { type: 'integer', minimum: 0, maximum: 10_000_000, default: 0 }, limit: { type: 'integer', minimum: 0, maximum: 500, default: 100 },
          q: { type: 'string', maxLength: 128 }, role: { enum: ['server', 'client'] }, presence: { enum: ['online', 'offline', 'unknown'] },
          status: { enum: ['pending', 'sent', 'acked', 'failed', 'excluded', 'done'] }, sort: { enum: ['id', 'role', 'since', 'step', 'certNotAfter'] },
        },
      },
    },
  }, async (req) => service.fleet.page(req.query as FleetQuery));

  app.get('/api/devices/:id', { schema: { params: rotationParams } }, async (req): Promise<DeviceDetail> => {
    const deviceId = (req.params as { id: string }).id;
    const row = db.device(deviceId);
    const device = service.fleet.device(deviceId);
    if (!device) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${deviceId}`);
    const rot = db.rotations().at(-1);
    const every = rot ? db.steps(rot.id) : [];
    const phase = rot ? phaseSchedule(rot, every) : null;
    const all = phase ? phaseRows(every, phase) : [];
    const order = phase ? deviceSequence(phase, row.role) : [];
    const mine = all.filter((r) => r.deviceId === deviceId).sort((a, b) => order.indexOf(a.step) - order.indexOf(b.step));
    const steps: StepView[] = mine.map((r) => ({
      step: r.step, status: r.status, seq: r.seq, attempts: r.attempts, sentAt: r.sentAt, ackedAt: r.ackedAt,
      error: r.errorCode ? { code: r.errorCode, message: r.errorMessage ?? '' } : null,
    }));
    const waitingFor = rot && phase && rot.status !== 'complete' && rot.status !== 'rolled-back'
      ? computeWaits(db, phase, all, service.presence, { honourPreferred: service.m.orchestrator.policy.honourPreferred, deviceId }).waits[0]?.waitingFor ?? []
      : [];
    return { device, certificate: certInfo(row.certificate), steps, waitingFor };
  });

  app.post('/api/devices/:id/exclude', {
    schema: { params: rotationParams, body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } } } },
  }, async (req) => {
    requireAdmin(me(req));
    const deviceId = (req.params as { id: string }).id;
    service.exclude(deviceId, (req.body as { reason: string }).reason, me(req).name);
    service.fleet.build();
    return service.fleet.device(deviceId);
  });

  app.get('/api/rotations', async () => ({ rotations: db.rotations().reverse().map((r) => rotationSummary(db, r)) }));

  app.get('/api/rotations/current', async () => {
    const rot = db.rotations().at(-1);
    if (!rot) throw new ManagerError('E_ROTATION_UNKNOWN', 'no rotation has been started');
    return rotationDetail(db, rot, service.presence, { honourPreferred: service.m.orchestrator.policy.honourPreferred });
  });

  app.get('/api/rotations/:id', { schema: { params: rotationParams } }, async (req) =>
    rotationDetail(db, service.requireRotation((req.params as { id: string }).id), service.presence, { honourPreferred: service.m.orchestrator.policy.honourPreferred }));

  app.get('/api/rotations/:id/timeline', { schema: { params: rotationParams } }, async (req) =>
    rotationTimeline(db, service.requireRotation((req.params as { id: string }).id), new Date()));

  app.post('/api/rotations', {
    schema: {
      body: {
        type: 'object', required: ['schedule'], additionalProperties: false,
        properties: {
          schedule: { enum: ['six-step', 'batched', 'client-root', 'server-root'] }, excludeOfflineAfterS: { anyOf: [{ type: 'integer', minimum: 1, maximum: 31_536_000 }, { type: 'null' }] },
          algorithm: { enum: [...CA_KEY_ALGORITHMS] }, subject: { type: 'string', minLength: 3, maxLength: 1024 },
          root: { enum: ['client', 'server'] }, distributeOldWithNew: { type: 'boolean' },
        },
      },
    },
  }, async (req, reply) => {
    requireAdmin(me(req));
    const body = req.body as { schedule: string; excludeOfflineAfterS?: number | null; algorithm?: CaKeyAlgorithm; subject?: string; root?: 'client' | 'server'; distributeOldWithNew?: boolean };
    const summary = await service.startRotation(body.schedule, me(req).name, { excludeOfflineAfterS: body.excludeOfflineAfterS ?? null, algorithm: body.algorithm, subject: body.subject, root: body.root, distributeOldWithNew: body.distributeOldWithNew });
    return reply.code(201).send(summary);
  });

  for (const action of ['pause', 'resume', 'abort'] as const) {
    app.post(`/api/rotations/:id/${action}`, { schema: { params: rotationParams, body: noBody } }, async (req) => {
      requireAdmin(me(req));
      return service.act((req.params as { id: string }).id, action, me(req).name);
    });
  }

  // The schedules that can start a rotation of this fleet: one root's, or each root's of a fleet with separate roots.
  app.get('/api/schedules', async (): Promise<{ separateRoots: boolean; schedules: ScheduleView[] }> => ({
    separateRoots: service.m.ca.separateRoots(),
    schedules: (service.m.ca.separateRoots() ? ['server-root', 'client-root'] : ['six-step', 'batched']).map((name) => {
      const s = SCHEDULES[name]!;
      return {
        name, ...(s.root ? { root: s.root } : {}), sequence: { server: deviceSequence(s, 'server'), client: deviceSequence(s, 'client') },
        steps: s.steps.map((st) => ({ id: st.id, role: st.role, doc: st.doc, after: st.after.map((p) => `${p.scope === 'self' ? 'own' : 'every peer\'s'} ${p.step}${p.strength === 'preferred' ? ' (preferred)' : ''}`) })),
      };
    }),
  }));

  app.get('/api/schedule', async (): Promise<SchedulerView> => {
    const scheduler = service.scheduler;
    if (!scheduler) throw new ManagerError('E_NOT_FOUND', 'this service runs no scheduler');
    return scheduler.view();
  });

  app.post('/api/renewals', {
    schema: {
      // Either the devices by id, or every device whose certificate expires within a duration (whole fleets).
      body: {
        type: 'object', additionalProperties: false, oneOf: [{ required: ['deviceIds'] }, { required: ['expiringWithinS'] }],
        properties: {
          deviceIds: { type: 'array', minItems: 1, maxItems: 2000, uniqueItems: true, items: { ...id, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$' } },
          expiringWithinS: { type: 'integer', minimum: 1, maximum: 315_360_000 },
          excludeOfflineAfterS: { anyOf: [{ type: 'integer', minimum: 1, maximum: 31_536_000 }, { type: 'null' }] },
        },
      },
    },
  }, async (req, reply) => {
    requireAdmin(me(req));
    const body = req.body as { deviceIds?: string[]; expiringWithinS?: number; excludeOfflineAfterS?: number | null };
    let ids = body.deviceIds;
    if (!ids) {
      const limit = Date.now() + body.expiringWithinS! * 1000;
      ids = service.fleet.all().filter((d) => d.certNotAfter !== null && Date.parse(d.certNotAfter) <= limit).map((d) => d.id);
      if (ids.length === 0) throw new ManagerError('E_BAD_REQUEST', `no device certificate expires within ${body.expiringWithinS} s; nothing to renew`);
    }
    const summary = await service.startRenewal(ids, me(req).name, { excludeOfflineAfterS: body.excludeOfflineAfterS ?? null });
    return reply.code(201).send(summary);
  });

  app.get('/api/audit', {
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          after: { ...seq, minimum: 0 }, before: { ...seq, minimum: 1 }, order: { enum: ['asc', 'desc'], default: 'asc' },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, rotation: id,
        },
      },
    },
  }, async (req): Promise<AuditPage> => {
    const q = req.query as { after?: number; before?: number; order: 'asc' | 'desc'; limit: number; rotation?: string };
    const rows = service.m.audit.entries({ after: q.after, before: q.before, desc: q.order === 'desc', limit: q.limit, rotationId: q.rotation });
    return { entries: rows.map(toEntry), next: rows.length === q.limit ? rows.at(-1)!.seq : null };
  });

  app.get('/api/broker', async () => extra.broker());

  app.get('/api/certificates', async (): Promise<CertificatesView> => certificatesView(service, { operatorCa: extra.operatorCa, mgmtCa: extra.mgmtCa }));
}
