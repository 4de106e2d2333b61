/**
 * The Prometheus endpoint: gauges and counters read from the fleet
 * database, the audit log and the live presence at scrape time (so they
 * always match the database), plus the step-latency histogram seeded from
 * the database at start and fed by every acknowledgement after.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StepRow } from '../fleet/fleet-db.ts';
import { phaseSchedule } from '../rotation/phase.ts';
import type { ManagerService } from '../service/manager-service.ts';

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** Build the registry for one service. */
export function buildMetrics(service: ManagerService): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'trustroll_manager_' });
  const db = service.m.db;

  new Gauge({
    name: 'trustroll_devices', help: 'Enrolled devices by role and presence (online, offline, unknown = never seen)', labelNames: ['role', 'presence'], registers: [registry],
    collect() {
      this.reset();
      const c = new Map<string, number>();
      for (const role of ['server', 'client']) for (const p of ['online', 'offline', 'unknown']) c.set(`${role}/${p}`, 0);
      for (const d of db.db.prepare('SELECT id, role FROM devices').all() as { id: string; role: string }[]) {
        const p = service.presence.get(d.id);
        const k = `${d.role}/${p ? (p.online ? 'online' : 'offline') : 'unknown'}`;
        c.set(k, (c.get(k) ?? 0) + 1);
      }
      for (const [k, n] of c) {
        const [role, presence] = k.split('/') as [string, string];
        this.set({ role, presence }, n);
      }
    },
  });

  new Gauge({
    name: 'trustroll_rotation_steps', help: 'Step rows of the latest rotation by step and status', labelNames: ['rotation', 'step', 'status'], registers: [registry],
    collect() {
      this.reset();
      const rot = db.rotations().at(-1);
      if (!rot) return;
      const rows = db.db.prepare('SELECT step, status, COUNT(*) AS n FROM steps WHERE rotation_id = ? GROUP BY step, status').all(rot.id) as { step: string; status: string; n: number }[];
      const statuses = ['pending', 'sent', 'acked', 'failed', 'excluded'];
      for (const s of phaseSchedule(rot, rows.map((r) => ({ step: r.step }) as StepRow)).steps) for (const status of statuses) this.set({ rotation: rot.id, step: s.id, status }, 0);
      for (const r of rows) this.set({ rotation: rot.id, step: r.step, status: r.status }, r.n);
    },
  });

  new Gauge({
    name: 'trustroll_rotation_info', help: 'The latest rotation (value 1) with its schedule and status', labelNames: ['rotation', 'schedule', 'status'], registers: [registry],
    collect() {
      this.reset();
      const rot = db.rotations().at(-1);
      if (rot) this.set({ rotation: rot.id, schedule: rot.schedule, status: rot.status }, 1);
    },
  });

  const latency = new Histogram({
    name: 'trustroll_step_latency_seconds', help: 'From first send to acknowledgement, per step', labelNames: ['step'], buckets: LATENCY_BUCKETS, registers: [registry],
  });
  const seeded = db.db.prepare("SELECT step, sent_at AS sentAt, acked_at AS ackedAt FROM steps WHERE status = 'acked' AND sent_at IS NOT NULL AND acked_at IS NOT NULL").all() as { step: string; sentAt: string; ackedAt: string }[];
  for (const r of seeded) latency.observe({ step: r.step }, Math.max(0, (Date.parse(r.ackedAt) - Date.parse(r.sentAt)) / 1000));
  service.on('acked', (row, seconds) => latency.observe({ step: row.step }, seconds));

  const auditCounter = (name: string, help: string, action: string, label?: string) => new Counter({
    name, help, labelNames: label ? [label] : [], registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of service.m.audit.counts(action)) {
        if (label) this.inc({ [label]: code || 'none' }, n);
        else this.inc(n);
      }
    },
  });
  auditCounter('trustroll_ack_errors_total', 'Error acknowledgements from devices by code (audit log)', 'step.error', 'code');
  auditCounter('trustroll_step_resends_total', 'Steps sent again after a time-out or back-off (audit log)', 'step.resent');

  new Gauge({
    name: 'trustroll_agent_handshakes', help: 'Mutual-TLS handshakes the agents report in their state messages (sum over devices, since each agent started)', labelNames: ['role', 'result'], registers: [registry],
    collect() {
      this.reset();
      const sum = new Map<string, number>();
      for (const p of service.presence.all()) {
        const tls = (p.state as { tls?: { attempts: number; ok: number; failed: number; unreachable?: number; fallbacks: number } }).tls;
        const role = p.state.role ?? 'unknown';
        if (!tls) continue;
        // failed: trust failures; unreachable (agents that report it): peers that did not answer, kept apart.
        for (const result of ['attempts', 'ok', 'failed', 'unreachable', 'fallbacks'] as const) sum.set(`${role}/${result}`, (sum.get(`${role}/${result}`) ?? 0) + (tls[result] ?? 0));
      }
      for (const [k, n] of sum) {
        const [role, result] = k.split('/') as [string, string];
        this.set({ role, result }, n);
      }
    },
  });

  new Gauge({
    name: 'trustroll_mqtt', help: 'The manager\'s MQTT session: connected (1/0) and its counters', labelNames: ['what'], registers: [registry],
    collect() {
      this.reset();
      const s = service.m.transport.stats;
      this.set({ what: 'connected' }, s.connected ? 1 : 0);
      for (const k of ['connects', 'disconnects', 'commandsPublished', 'republished', 'acksReceived', 'acksDropped', 'statesReceived'] as const) this.set({ what: k }, s[k]);
    },
  });

  return registry;
}
