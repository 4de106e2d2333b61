/**
 * The fleet table of the dashboard: one line per device with its presence,
 * the roots it trusts (labelled R0/D/R1), its certificate's expiry and where
 * it stands in the current rotation. Built from the database and the
 * presence map, cached, and rebuilt at most a few times a second while a
 * rotation moves, so paging and filtering 10,000 devices stays cheap.
 */
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../../protocol/clock.ts';
import { deviceSequence } from '../../protocol/schedule.ts';
import { phaseRows, phaseSchedule } from '../rotation/phase.ts';
import type { FleetDb, RotationRow, StepRow } from '../fleet/fleet-db.ts';
import type { DeviceStepStatus, FleetDevice, FleetPage, FleetQuery, TrustSlot } from '../http/api-types.ts';
import type { CaAuthority } from '../pki/ca-authority.ts';
import { changesRoot } from '../rotation/phase.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import type { Presence } from './presence.ts';

const DAY = 86_400_000;
const REBUILD_MIN_MS = 250;

/** Fingerprint → what the manager knows the certificate to be. */
export type RootLabels = ReadonlyMap<string, TrustSlot['label']>;

/** Cached fleet lines with paging, filtering and sorting. */
export class FleetView {
  private lines: FleetDevice[] = [];
  private byId = new Map<string, FleetDevice>();
  private builtAt = 0;
  private builtFor = '';
  private stepsVersion = 0;
  private readonly notAfter = new Map<string, { pem: string; notAfter: Date }>();

  constructor(private readonly db: FleetDb, private readonly presence: Presence, private readonly clock: Clock, private readonly labels: () => RootLabels) {}

  /** Step rows or enrolments changed: rebuild on the next read (throttled). */
  invalidate(): void {
    this.stepsVersion++;
  }

  private current(): FleetDevice[] {
    const key = `${this.stepsVersion}/${this.presence.version}`;
    const now = Date.now();
    if (key !== this.builtFor && (this.builtFor === '' || now - this.builtAt >= REBUILD_MIN_MS)) this.build();
    return this.lines;
  }

  /** Rebuild every line now (a rotation changed status: readers must see it at once). */
  build(): void {
    this.builtFor = `${this.stepsVersion}/${this.presence.version}`;
    this.builtAt = Date.now();
    const rotation = this.db.rotations().at(-1) ?? null;
    const byDevice = new Map<string, StepRow[]>();
    if (rotation) {
      for (const r of this.db.steps(rotation.id)) {
        let list = byDevice.get(r.deviceId);
        if (!list) byDevice.set(r.deviceId, (list = []));
        list.push(r);
      }
    }
    const labels = this.labels();
    const now = this.clock.now().getTime();
    const lines: FleetDevice[] = [];
    const routes = this.db.routes();
    const relaysFor = new Map<string, string[]>();
    for (const [id, relay] of routes) relaysFor.set(relay, [...(relaysFor.get(relay) ?? []), id]);
    const accepts = this.db.deviceAccepts();
    for (const d of this.db.devices()) {
      const p = this.presence.get(d.id);
      const trust = p?.state.state?.trust;
      const trusts: TrustSlot[] = trust
        ? (Object.entries({ current: trust.current, distribution: trust.distribution, new: trust.next }) as [TrustSlot['slot'], string | null][])
          .filter((e): e is [TrustSlot['slot'], string] => e[1] !== null)
          .map(([slot, sha256]) => ({ slot, sha256, label: labels.get(sha256) ?? 'unknown' }))
        : [];
      const notAfter = this.certNotAfter(d.id, d.certificate);
      const tls = (p?.state as { tls?: FleetDevice['tls'] } | undefined)?.tls;
      lines.push({
        id: d.id, role: d.role, online: p ? p.online : null, since: p?.since ?? null, lastSeen: p?.lastSeen ?? null, trusts,
        certNotAfter: notAfter?.toISOString() ?? null, certDaysLeft: notAfter ? Math.floor((notAfter.getTime() - now) / DAY) : null,
        ...stepOf(rotation, d.role, byDevice.get(d.id)),
        tls: tls ? { attempts: tls.attempts, ok: tls.ok, failed: tls.failed, unreachable: tls.unreachable ?? null, fallbacks: tls.fallbacks } : null,
        via: routes.get(d.id) ?? null, relaysFor: relaysFor.get(d.id) ?? [], accepts: accepts.get(d.id) ?? null,
      });
    }
    lines.sort((a, b) => NATURAL.compare(a.id, b.id));
    this.lines = lines;
    this.byId = new Map(lines.map((l) => [l.id, l]));
  }

  private certNotAfter(id: string, pem: string): Date | null {
    const hit = this.notAfter.get(id);
    if (hit && hit.pem === pem) return hit.notAfter;
    try {
      const notAfter = new Date(new X509Certificate(pem).validTo);
      this.notAfter.set(id, { pem, notAfter });
      return notAfter;
    } catch {
      return null;
    }
  }

  /** Every device's line (read-only). */
  all(): readonly FleetDevice[] {
    return this.current();
  }

  /** One device's line. */
  device(id: string): FleetDevice | undefined {
    this.current();
    return this.byId.get(id);
  }

  /** Totals over the whole fleet. */
  counts(): FleetPage['counts'] {
    const c = { devices: 0, online: 0, offline: 0, unknown: 0, servers: 0, clients: 0, excluded: 0 };
    for (const l of this.current()) {
      c.devices++;
      if (l.online === null) c.unknown++;
      else if (l.online) c.online++;
      else c.offline++;
      if (l.role === 'server') c.servers++;
      else c.clients++;
      if (l.excluded) c.excluded++;
    }
    return c;
  }

  /** A page of the fleet matching `q`. */
  page(q: FleetQuery): FleetPage {
    const offset = q.offset ?? 0;
    const limit = q.limit ?? 100;
    const needle = q.q?.toLowerCase();
    let rows = this.current().filter((l) =>
      (!needle || l.id.toLowerCase().includes(needle))
      && (!q.role || l.role === q.role)
      && (!q.presence || (q.presence === 'unknown' ? l.online === null : q.presence === 'online' ? l.online === true : l.online === false))
      && (!q.status || l.stepStatus === q.status));
    const sort = q.sort ?? 'id';
    if (sort !== 'id') rows = [...rows].sort(SORTS[sort]);
    return { total: rows.length, offset, limit, counts: this.counts(), devices: rows.slice(offset, offset + limit) };
  }
}

/** printer-2 before printer-10. */
const NATURAL = new Intl.Collator('en', { numeric: true });

const str = (a: string | null, b: string | null) => (a ?? '\uffff').localeCompare(b ?? '\uffff');
const SORTS: Record<Exclude<NonNullable<FleetQuery['sort']>, 'id'>, (a: FleetDevice, b: FleetDevice) => number> = {
  role: (a, b) => a.role.localeCompare(b.role) || NATURAL.compare(a.id, b.id),
  since: (a, b) => str(a.since, b.since) || NATURAL.compare(a.id, b.id),
  step: (a, b) => str(a.step, b.step) || str(a.stepStatus, b.stepStatus) || NATURAL.compare(a.id, b.id),
  certNotAfter: (a, b) => str(a.certNotAfter, b.certNotAfter) || NATURAL.compare(a.id, b.id),
};

type StepFields = Pick<FleetDevice, 'rotationId' | 'step' | 'stepStatus' | 'attempts' | 'lastAckAt' | 'lastError' | 'excluded'>;

/** Where a device stands in `rotation`: its next unacknowledged step, or `done`. */
function stepOf(rotation: RotationRow | null, role: 'server' | 'client', rows: StepRow[] | undefined): StepFields {
  const none: StepFields = { rotationId: null, step: null, stepStatus: null, attempts: 0, lastAckAt: null, lastError: null, excluded: false };
  if (!rotation || !rows || rows.length === 0) return none;
  const schedule = phaseSchedule(rotation, rows);
  const order = deviceSequence(schedule, role);
  const byStep = new Map(phaseRows(rows, schedule).map((r) => [r.step, r]));
  const seq = order.map((s) => byStep.get(s)).filter((r): r is StepRow => r !== undefined);
  if (seq.length === 0) return none;
  const excluded = seq.some((r) => r.status === 'excluded');
  const next = seq.find((r) => r.status !== 'acked' && r.status !== 'excluded') ?? null;
  const shown = next ?? seq.find((r) => r.status === 'excluded') ?? seq.at(-1)!;
  const lastAckAt = seq.reduce<string | null>((m, r) => (r.ackedAt && (!m || r.ackedAt > m) ? r.ackedAt : m), null);
  const errored = shown.errorCode ? shown : [...seq].reverse().find((r) => r.errorCode);
  const status: DeviceStepStatus = next ? next.status as DeviceStepStatus : excluded ? 'excluded' : 'done';
  return {
    rotationId: rotation.id, step: shown.step, stepStatus: status, attempts: shown.attempts, lastAckAt,
    lastError: errored?.errorCode ? { code: errored.errorCode, message: errored.errorMessage ?? '' } : null, excluded,
  };
}

/** Fingerprint → R0/D/R1 label for the trust stores devices report: the roots of every root rotation (a renewal has none) and the active root(s). */
export function rootLabels(db: FleetDb, ca: Pick<CaAuthority, 'separateRoots' | 'activeRoot'>): Map<string, TrustSlot['label']> {
  const labels = new Map<string, TrustSlot['label']>();
  // A renewal changes no root: its D/R1 columns hold the active root.
  const rotations = db.rotations().filter(changesRoot);
  rotations.forEach((r, i) => {
    labels.set(fingerprintPem(r.distribution), 'D');
    labels.set(fingerprintPem(r.newRoot), i === rotations.length - 1 ? 'R1' : 'R0');
  });
  for (const side of ca.separateRoots() ? ['server', 'client'] as const : [undefined]) {
    const active = fingerprintPem(ca.activeRoot(side).cert);
    if (!labels.has(active)) labels.set(active, 'R0');
  }
  return labels;
}
