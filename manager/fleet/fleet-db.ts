/**
 * manager/fleet/: what the manager knows of its devices. This file is the
 * room's front, the manager database; around it are the database's shape
 * (fleet-schema.ts), who talks to whom (peering.ts), how each device is
 * reached, directly or through a relay (topology.ts), and the repair of
 * devices that lost steps they had acknowledged (reconcile.ts).
 *
 * The manager's durable state in SQLite: enrolled devices and their
 * per-device sequence counters, the peering graph, rotations with their
 * material, and one row per (rotation, device, step). Every change is one
 * transaction; a restarted manager rebuilds everything from here.
 */
import Database from 'better-sqlite3';
import { ManagerError } from '../errors.ts';
import { ADDED_COLUMNS, SCHEMA, STEP_COLS, type DeviceRow, type RotationRow, type StepRow, type StepStatus } from './fleet-schema.ts';

export type { DeviceRow, RotationRow, RotationStatusName, StepRow, StepStatus } from './fleet-schema.ts';

/** Access to the manager database. */
export class FleetDb {
  readonly db: Database.Database;

  constructor(readonly path: string) {
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(SCHEMA);
      for (const [table, column, type] of ADDED_COLUMNS) this.addColumnIfMissing(table, column, type);
      const v = this.stmt("SELECT v FROM meta WHERE k = 'schema'").get() as { v: string } | undefined;
      if (!v) this.stmt("INSERT INTO meta (k, v) VALUES ('schema', '1')").run();
      else if (v.v !== '1') throw new Error(`schema version ${v.v}`);
    } catch (err) {
      throw new ManagerError('E_MANAGER_DB', `${path}: ${(err as Error).message}`);
    }
  }

  /** Additive schema change: databases made before the column existed keep working (schema version stays 1). */
  private addColumnIfMissing(table: string, column: string, type: string): void {
    const cols = this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
    if (!cols.some((c) => c.name === column)) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A prepared statement, compiled once per SQL text. */
  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  /** Run `fn` in one transaction. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  addDevice(d: Omit<DeviceRow, 'nextSeq'>): void {
    try {
      this.stmt('INSERT INTO devices (id, role, common_name, spki, certificate) VALUES (?, ?, ?, ?, ?)').run(d.id, d.role, d.commonName, d.spki, d.certificate);
    } catch (err) {
      if (String((err as Error).message).includes('UNIQUE')) throw new ManagerError('E_DEVICE_EXISTS', `device ${d.id} is already enrolled`);
      throw err;
    }
  }

  devices(): DeviceRow[] {
    return this.stmt('SELECT id, role, common_name AS commonName, spki, certificate, next_seq AS nextSeq FROM devices ORDER BY id').all() as DeviceRow[];
  }

  device(id: string): DeviceRow {
    const row = this.stmt('SELECT id, role, common_name AS commonName, spki, certificate, next_seq AS nextSeq FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
    if (!row) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${id}`);
    return row;
  }

  setDeviceCertificate(id: string, certificate: string, spki: Buffer): void {
    this.stmt('UPDATE devices SET certificate = ?, spki = ? WHERE id = ?').run(certificate, spki, id);
  }

  /**
   * Record the signature algorithms a device declared it can verify
   * (e.g. ['RSA'] or ['RSA', 'ECDSA']); null = not declared (both).
   */
  setDeviceVerifies(id: string, verifies: readonly string[] | null): void {
    const r = this.stmt('UPDATE devices SET verifies = ? WHERE id = ?').run(verifies ? verifies.join(',') : null, id);
    if (r.changes === 0) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${id}`);
  }

  /** Declared verification algorithms per device id; a device that declared nothing is absent (it verifies both). */
  deviceVerifies(): Map<string, string[]> {
    const rows = this.stmt('SELECT id, verifies FROM devices WHERE verifies IS NOT NULL').all() as { id: string; verifies: string }[];
    return new Map(rows.map((r) => [r.id, r.verifies.split(',').filter(Boolean)]));
  }

  /**
   * Record the optional payload fields a device's agent reported it applies
   * (its state message's `accepts`; [] for an agent too old to report
   * them). Written only when it changed; false for an unknown device or no
   * change.
   */
  recordAccepts(id: string, fields: readonly string[]): boolean {
    const text = JSON.stringify([...fields].sort());
    return this.stmt('UPDATE devices SET accepts = ? WHERE id = ? AND (accepts IS NULL OR accepts <> ?)').run(text, id, text).changes > 0;
  }

  /** What each device's agent last reported it accepts; a device that never reported (since enrolment) is absent. */
  deviceAccepts(): Map<string, string[]> {
    const rows = this.stmt('SELECT id, accepts FROM devices WHERE accepts IS NOT NULL ORDER BY id').all() as { id: string; accepts: string }[];
    return new Map(rows.map((r) => [r.id, JSON.parse(r.accepts) as string[]]));
  }

  /** Record the key the device's next certificate must carry (after a re-key). */
  setDeviceKey(id: string, spki: Buffer): void {
    const r = this.stmt('UPDATE devices SET spki = ? WHERE id = ?').run(spki, id);
    if (r.changes === 0) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${id}`);
  }

  /**
   * Mark a management-root rotation open (its id) or finished (null). Fleet
   * rotations refuse to start while one is open: both use each device's
   * sequence numbers (manager/link-rotation).
   */
  setOpenLinkRotation(id: string | null): void {
    if (id === null) this.stmt("DELETE FROM meta WHERE k = 'link-rotation'").run();
    else this.stmt("INSERT INTO meta (k, v) VALUES ('link-rotation', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v").run(id);
  }

  /** The open management-root rotation's id, or null. */
  openLinkRotation(): string | null {
    return (this.stmt("SELECT v FROM meta WHERE k = 'link-rotation'").get() as { v: string } | undefined)?.v ?? null;
  }

  /** Route a device's commands through relay `via` (a peer with a broker session), or directly (null). See topology.ts. */
  setDeviceVia(id: string, via: string | null): void {
    const r = this.stmt('UPDATE devices SET via = ? WHERE id = ?').run(via, id);
    if (r.changes === 0) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${id}`);
  }

  /** The relay of every relayed device (direct devices are absent). */
  routes(): Map<string, string> {
    const rows = this.stmt('SELECT id, via FROM devices WHERE via IS NOT NULL').all() as { id: string; via: string }[];
    return new Map(rows.map((r) => [r.id, r.via]));
  }

  /** The relay of one device, or null when the manager reaches it directly (or it is unknown). */
  deviceVia(id: string): string | null {
    const row = this.stmt('SELECT via FROM devices WHERE id = ?').get(id) as { via: string | null } | undefined;
    return row?.via ?? null;
  }

  /** Replace the peering graph; an empty list means every client talks to every server. */
  setPeering(edges: readonly { server: string; client: string }[]): void {
    this.tx(() => {
      this.stmt('DELETE FROM peers').run();
      const ins = this.stmt('INSERT INTO peers (server_id, client_id) VALUES (?, ?)');
      for (const e of edges) ins.run(e.server, e.client);
    });
  }

  peering(): { server: string; client: string }[] {
    return this.stmt('SELECT server_id AS server, client_id AS client FROM peers').all() as { server: string; client: string }[];
  }

  /** Allocate the next sequence number for a device (inside the caller's transaction). */
  allocateSeq(deviceId: string): number {
    const row = this.stmt('UPDATE devices SET next_seq = next_seq + 1 WHERE id = ? RETURNING next_seq - 1 AS seq').get(deviceId) as { seq: number } | undefined;
    if (!row) throw new ManagerError('E_DEVICE_UNKNOWN', `device ${deviceId}`);
    return row.seq;
  }

  /** Add pending step rows to an existing rotation (its rollback phase), inside the caller's transaction. */
  insertSteps(rotationId: string, steps: readonly { deviceId: string; step: string; status?: StepStatus }[]): void {
    const ins = this.stmt('INSERT INTO steps (rotation_id, device_id, step, status) VALUES (?, ?, ?, ?)');
    for (const s of steps) ins.run(rotationId, s.deviceId, s.step, s.status ?? 'pending');
  }

  /** A rotation, its leaves, its step rows and (optionally) its OldWithNew, in one transaction. */
  insertRotation(r: RotationRow, leaves: ReadonlyMap<string, string>, steps: readonly { deviceId: string; step: string }[], extra: { oldWithNew?: string; pushOldWithNew?: boolean } = {}): void {
    this.tx(() => {
      this.stmt('INSERT INTO rotations (id, schedule, status, unsafe, distribution, new_root, created_at, updated_at, error, old_with_new, push_old_with_new) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(r.id, r.schedule, r.status, r.unsafe ? 1 : 0, r.distribution, r.newRoot, r.createdAt, r.updatedAt, r.error, extra.oldWithNew ?? null, extra.pushOldWithNew ? 1 : 0);
      const leaf = this.stmt('INSERT INTO leaves (rotation_id, device_id, certificate) VALUES (?, ?, ?)');
      for (const [deviceId, pem] of leaves) leaf.run(r.id, deviceId, pem);
      const step = this.stmt("INSERT INTO steps (rotation_id, device_id, step, status) VALUES (?, ?, ?, 'pending')");
      for (const s of steps) step.run(r.id, s.deviceId, s.step);
    });
  }

  rotation(id: string): RotationRow | null {
    const row = this.stmt('SELECT id, schedule, status, unsafe, distribution, new_root AS newRoot, created_at AS createdAt, updated_at AS updatedAt, error FROM rotations WHERE id = ?').get(id) as (Omit<RotationRow, 'unsafe'> & { unsafe: number }) | undefined;
    return row ? { ...row, unsafe: row.unsafe === 1 } : null;
  }

  /** The OldWithNew certificate of a rotation (K0 certified by K1), or null (renewals, older databases). */
  /** The OldWithNew a rotation hands its devices with the old-root clean-up, or null when it was not started to distribute one. */
  rotationPushedOldWithNew(id: string): string | null {
    const row = this.stmt('SELECT old_with_new AS own, push_old_with_new AS push FROM rotations WHERE id = ?').get(id) as { own: string | null; push: number | null } | undefined;
    return row?.push ? row.own : null;
  }

  rotationOldWithNew(id: string): string | null {
    const row = this.stmt('SELECT old_with_new AS own FROM rotations WHERE id = ?').get(id) as { own: string | null } | undefined;
    return row?.own ?? null;
  }

  /**
   * OldWithNew of the newest root rotation that was not rolled back (open or
   * complete; renewals make none), or null: what a peer trusting only that
   * rotation's R1 needs to verify a device still presenting a K0 leaf.
   */
  latestOldWithNew(): { rotationId: string; pem: string } | null {
    const row = this.stmt("SELECT id, old_with_new AS pem FROM rotations WHERE schedule != 'renew' AND status != 'rolled-back' ORDER BY created_at DESC LIMIT 1").get() as { id: string; pem: string | null } | undefined;
    return row?.pem ? { rotationId: row.id, pem: row.pem } : null;
  }

  rotations(): RotationRow[] {
    return (this.stmt('SELECT id, schedule, status, unsafe, distribution, new_root AS newRoot, created_at AS createdAt, updated_at AS updatedAt, error FROM rotations ORDER BY created_at').all() as (Omit<RotationRow, 'unsafe'> & { unsafe: number })[])
      .map((r) => ({ ...r, unsafe: r.unsafe === 1 }));
  }

  setRotationStatus(id: string, status: RotationRow['status'], at: string, error: string | null = null): void {
    this.stmt('UPDATE rotations SET status = ?, updated_at = ?, error = ? WHERE id = ?').run(status, at, error, id);
  }

  leaves(rotationId: string): Map<string, string> {
    const rows = this.stmt('SELECT device_id AS deviceId, certificate FROM leaves WHERE rotation_id = ?').all(rotationId) as { deviceId: string; certificate: string }[];
    return new Map(rows.map((r) => [r.deviceId, r.certificate]));
  }

  /** The new certificate issued to one device in a rotation. */
  leaf(rotationId: string, deviceId: string): string | undefined {
    const row = this.stmt('SELECT certificate FROM leaves WHERE rotation_id = ? AND device_id = ?').get(rotationId, deviceId) as { certificate: string } | undefined;
    return row?.certificate;
  }

  steps(rotationId: string): StepRow[] {
    return this.stmt(`SELECT ${STEP_COLS} FROM steps WHERE rotation_id = ?`).all(rotationId) as StepRow[];
  }

  /** Write a step row's mutable fields. */
  updateStep(s: StepRow): void {
    this.stmt(`UPDATE steps SET status = ?, seq = ?, attempts = ?, command = ?, sent_at = ?, acked_at = ?, due_at = ?, error_code = ?, error_message = ?
      WHERE rotation_id = ? AND device_id = ? AND step = ?`)
      .run(s.status, s.seq, s.attempts, s.command, s.sentAt, s.ackedAt, s.dueAt, s.errorCode, s.errorMessage, s.rotationId, s.deviceId, s.step);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
