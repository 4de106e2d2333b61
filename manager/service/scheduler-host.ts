/**
 * The scheduler's host over a running ManagerService (scheduler.ts sees only
 * the SchedulerHost interface): the facts it decides from (the fleet
 * database, the CA's roots, presence), work started as the operator actions
 * are, and its latest view kept in the manager database for `trustroll
 * status` (storedSchedulerView reads it back without a service).
 */
import { X509Certificate } from 'node:crypto';
import type { FleetDb } from '../fleet/fleet-db.ts';
import type { SchedulerView } from '../http/api-types.ts';
import { openRotation } from '../rotation/orchestrator.ts';
import type { ManagerService } from './manager-service.ts';
import type { SchedulerHost } from './scheduler.ts';

const STATE_SCHEMA = 'CREATE TABLE IF NOT EXISTS scheduler_state (k TEXT PRIMARY KEY, v TEXT NOT NULL)';

/** The scheduler's host over a running ManagerService: facts from its database, CA and presence; work started as the operator actions are. */
export function serviceHost(service: ManagerService): SchedulerHost {
  const db = service.m.db;
  db.db.exec(STATE_SCHEMA);
  const validity = new Map<string, { pem: string; notBefore: Date; notAfter: Date }>();
  const datesOf = (key: string, pem: string) => {
    const hit = validity.get(key);
    if (hit && hit.pem === pem) return hit;
    const c = new X509Certificate(pem);
    const v = { pem, notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo) };
    validity.set(key, v);
    return v;
  };
  return {
    facts: () => {
      const open = openRotation(db);
      const ca = service.m.ca;
      const roots = ca.separateRoots() ? (['server', 'client'] as const).map((side) => ({ side, notAfter: datesOf(`\u0000root-${side}`, ca.activeRoot(side).cert).notAfter })) : null;
      return {
        rootNotAfter: roots ? new Date(Math.min(...roots.map((r) => r.notAfter.getTime()))) : datesOf('\u0000root', ca.activeRoot().cert).notAfter,
        ...(roots ? { roots } : {}),
        devices: db.devices().map((d) => ({ id: d.id, role: d.role, ...datesOf(d.id, d.certificate), online: service.presence.get(d.id)?.online ?? null })),
        open: open ? { id: open.id, schedule: open.schedule, status: open.status } : null,
      };
    },
    startRotation: (schedule, actor, opts) => service.startRotation(schedule, actor, opts),
    startRenewal: (ids, actor, opts) => service.startRenewal(ids, actor, opts),
    audit: (e) => { service.audit(e); },
    save: (v) => { db.db.prepare("INSERT INTO scheduler_state (k, v) VALUES ('view', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v").run(JSON.stringify(v)); },
  };
}

/** The view the last `trustroll serve` with a scheduler kept in the database, or null. */
export function storedSchedulerView(db: FleetDb): SchedulerView | null {
  const table = db.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'scheduler_state'").get();
  if (!table) return null;
  const row = db.db.prepare("SELECT v FROM scheduler_state WHERE k = 'view'").get() as { v: string } | undefined;
  return row ? JSON.parse(row.v) as SchedulerView : null;
}
