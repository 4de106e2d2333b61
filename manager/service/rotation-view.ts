/**
 * The rotation view of the dashboard and the API: progress per step, an
 * acknowledgement timeline, and the question operators ask most: which
 * pending step waits for whom ("P4 of printer-17 waits for P2 of
 * console-3, offline since 10:42"), answered by rotation/waits.ts, the
 * same answer `trustroll status` gives, with presence added.
 */
import { X509Certificate } from 'node:crypto';
import { leadingCode } from '../../protocol/errors.ts';
import { fingerprint, dn } from '../../protocol/pem.ts';
import { rollbackBlockedBy } from '../../protocol/schedule.ts';
import { SCHEDULES, type Schedule } from '../../protocol/steps.ts';
import { phaseRows, phaseSchedule, rollbackBlocker } from '../rotation/phase.ts';
import type { FleetDb, RotationRow, StepRow } from '../fleet/fleet-db.ts';
import type { Blocker, CertInfo, RotationDetail, RotationSummary, StepProgress, Timeline, Wait } from '../http/api-types.ts';
import { firstBlockers, whoWaits } from '../rotation/waits.ts';
import type { Presence } from './presence.ts';

const MAX_WAITS = 200;
const MAX_BLOCKERS_PER_WAIT = 5;
const MAX_BLOCKERS = 100;

/**
 * The list/live-event form of a rotation: counts of the phase it is in
 * (forward, or rollback). Grouped in SQL, so a list of rotations of a
 * 10,000-device fleet stays cheap.
 */
export function rotationSummary(db: FleetDb, r: RotationRow): RotationSummary {
  const groups = db.db.prepare('SELECT step, status, COUNT(*) AS n FROM steps WHERE rotation_id = ? GROUP BY step, status').all(r.id) as { step: string; status: StepRow['status']; n: number }[];
  const present = groups.map((g) => ({ step: g.step, status: g.status }) as StepRow);
  const schedule = phaseSchedule(r, present);
  const ids = new Set(schedule.steps.map((s) => s.id));
  const mine = groups.filter((g) => ids.has(g.step));
  const count = (status: string) => mine.filter((g) => g.status === status).reduce((a, g) => a + g.n, 0);
  // Only the rows that can block a rollback are read in full (for the reason's device and time).
  const forward = SCHEDULES[r.schedule];
  const blocking = forward ? rollbackBlockedBy(forward) : [];
  const candidates = groups.some((g) => blocking.includes(g.step) && g.status !== 'pending' && g.status !== 'excluded')
    ? db.db.prepare(`SELECT step, status, device_id AS deviceId, sent_at AS sentAt FROM steps WHERE rotation_id = ? AND status NOT IN ('pending', 'excluded') AND step IN (${blocking.map(() => '?').join(', ')}) ORDER BY sent_at LIMIT 1`).all(r.id, ...blocking) as StepRow[]
    : [];
  const blocked = rollbackBlocker(r, candidates);
  return {
    id: r.id, schedule: r.schedule, status: r.status, createdAt: r.createdAt, updatedAt: r.updatedAt, error: r.error, errorCode: rotationErrorCode(r),
    acked: count('acked'), excluded: count('excluded'), total: mine.reduce((a, g) => a + g.n, 0), phaseSchedule: schedule.name,
    rollback: { possible: blocked === null && r.status !== 'rolled-back', reason: blocked },
  };
}

/**
 * The stable code of a rotation's recorded error: the code its error text
 * starts with (an abort whose rollback was refused: E_ROLLBACK_IMPOSSIBLE),
 * E_ROTATION_FAILED for a rotation a failing device stopped, else null.
 */
export function rotationErrorCode(r: Pick<RotationRow, 'status' | 'error'>): string | null {
  return (r.error ? leadingCode(r.error) : null) ?? (r.status === 'failed' ? 'E_ROTATION_FAILED' : null);
}

/** Subject, issuer, fingerprint and validity of a PEM certificate. */
export function certInfo(pem: string): CertInfo {
  const c = new X509Certificate(pem);
  return { subject: dn(c.subject), issuer: dn(c.issuer), sha256: fingerprint(c), notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(c.validTo).toISOString() };
}

/** Full detail of one rotation. */
export function rotationDetail(db: FleetDb, r: RotationRow, presence: Presence, opts: { honourPreferred?: boolean } = {}): RotationDetail {
  const all = db.steps(r.id);
  const schedule = phaseSchedule(r, all);
  const rows = phaseRows(all, schedule);
  const steps: StepProgress[] = schedule.steps.map((s) => ({ step: s.id, role: s.role, doc: s.doc, total: 0, pending: 0, sent: 0, acked: 0, failed: 0, excluded: 0 }));
  const progress = new Map(steps.map((s) => [s.step, s]));
  for (const row of rows) {
    const p = progress.get(row.step);
    if (!p) continue;
    p.total++;
    p[row.status]++;
  }
  const { waits, waitsTotal, blockers } = r.status === 'complete' || r.status === 'rolled-back' ? { waits: [], waitsTotal: 0, blockers: [] } : computeWaits(db, schedule, rows, presence, opts);
  return {
    ...rotationSummary(db, r), steps, waits, waitsTotal, blockers,
    material: { distribution: certInfo(r.distribution), newRoot: certInfo(r.newRoot) },
  };
}

/**
 * The rotation page's waits (the API's rotation detail, drawn by the
 * dashboard as is): from the one answer of rotation/waits.ts, every count
 * in full (`waitsTotal`, each wait's `more`, each blocker's `blocks`) and
 * the lists cut for the page: the first MAX_WAITS waits with
 * MAX_BLOCKERS_PER_WAIT blockers each, the MAX_BLOCKERS most-blocking
 * device-steps, offline ones first. With `deviceId`, only that device's
 * wait is listed (a device beyond the first MAX_WAITS of a large fleet
 * still gets its answer).
 */
export function computeWaits(db: FleetDb, schedule: Schedule, rows: readonly StepRow[], presence: Presence, opts: { honourPreferred?: boolean; deviceId?: string } = {}): { waits: Wait[]; waitsTotal: number; blockers: (Blocker & { blocks: number })[] } {
  const w = whoWaits(db, schedule, rows, opts);
  const blocker = (deviceId: string, step: string): Blocker => {
    const row = w.row(deviceId, step);
    const p = presence.get(deviceId);
    return {
      deviceId, step, role: w.roles.get(deviceId) ?? 'client', online: p ? p.online : null, since: p?.since ?? null,
      status: row?.status ?? 'pending', attempts: row?.attempts ?? 0, lastError: row?.errorCode ? { code: row.errorCode, message: row.errorMessage ?? '' } : null,
    };
  };
  const waits: Wait[] = w.waits.slice(0, MAX_WAITS).map((x) => {
    const found = firstBlockers(x, MAX_BLOCKERS_PER_WAIT);
    return { deviceId: x.deviceId, role: x.role, step: x.step, waitingFor: found.map((b) => blocker(b.deviceId, b.step)), more: x.count - found.length };
  });
  // Offline blockers first, then by how many they hold up.
  const ranked = w.holdUps.map((h) => ({ ...blocker(h.deviceId, h.step), blocks: h.blocks }))
    .sort((a, b) => Number(a.online !== false) - Number(b.online !== false) || b.blocks - a.blocks || a.deviceId.localeCompare(b.deviceId))
    .slice(0, MAX_BLOCKERS);
  waits.sort((a, b) => Number(a.waitingFor.every((x) => x.online !== false)) - Number(b.waitingFor.every((x) => x.online !== false)) || a.deviceId.localeCompare(b.deviceId));
  return { waits, waitsTotal: w.waits.length, blockers: ranked };
}

/** Acknowledgements per step over time, in at most ~120 buckets. */
export function rotationTimeline(db: FleetDb, r: RotationRow, now: Date): Timeline {
  const schedule = phaseSchedule(r, db.steps(r.id));
  const acks = db.db.prepare("SELECT step, acked_at AS at FROM steps WHERE rotation_id = ? AND status = 'acked' AND acked_at IS NOT NULL").all(r.id) as { step: string; at: string }[];
  const start = Date.parse(r.createdAt);
  const end = Math.max(start + 1000, r.status === 'running' || r.status === 'paused' || r.status === 'rolling-back' ? now.getTime() : acks.reduce((m, a) => Math.max(m, Date.parse(a.at)), start));
  const bucketMs = niceBucket((end - start) / 120);
  const n = Math.max(1, Math.ceil((end - start + 1) / bucketMs));
  const series = schedule.steps.map((s) => ({ step: s.id, counts: new Array<number>(n).fill(0) }));
  const byStep = new Map(series.map((s) => [s.step, s.counts]));
  for (const a of acks) {
    const counts = byStep.get(a.step);
    if (!counts) continue;
    const i = Math.min(n - 1, Math.max(0, Math.floor((Date.parse(a.at) - start) / bucketMs)));
    counts[i]!++;
  }
  return { rotationId: r.id, start: new Date(start).toISOString(), bucketMs, series };
}

const NICE = [100, 250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000];

function niceBucket(ms: number): number {
  return NICE.find((b) => b >= ms) ?? Math.ceil(ms / 86_400_000) * 86_400_000;
}
