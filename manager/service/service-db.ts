/**
 * The manager service's own tables, in the fleet database next to the
 * rotation state: device presence (online/offline and since when, the last
 * state message), the append-only hash-chained audit log with its
 * manager-wide sequence number, and API tokens (stored as SHA-256 only).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import type { FleetDb } from '../fleet-db.ts';
import { ManagerError } from '../errors.ts';
import type { OperatorRole } from '../http/api-types.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS presence (
  device_id TEXT PRIMARY KEY, online INTEGER NOT NULL, since TEXT NOT NULL, last_seen TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  rotation_id TEXT, device_id TEXT, step TEXT, code TEXT, detail TEXT, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_rotation ON audit (rotation_id, seq);
CREATE TABLE IF NOT EXISTS api_tokens (
  name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('read','admin')), sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
`;

/** A device's presence as last seen by the manager. */
export interface PresenceRow {
  deviceId: string;
  online: boolean;
  since: string;
  lastSeen: string;
  state: DeviceState;
}

/** What an audit entry records (seq, time and hashes are added on append). */
export interface AuditInput {
  actor: string;
  action: string;
  rotationId?: string | null;
  deviceId?: string | null;
  step?: string | null;
  code?: string | null;
  detail?: Record<string, unknown> | null;
}

/** A stored audit entry. */
export interface AuditRow extends Required<AuditInput> {
  seq: number;
  at: string;
  prev: string;
  hash: string;
}

const GENESIS = '0'.repeat(64);

/** SHA-256 over the previous hash and the entry's canonical fields. */
export function auditHash(prev: string, e: Omit<AuditRow, 'hash' | 'prev'>): string {
  const body = JSON.stringify([e.seq, e.at, e.actor, e.action, e.rotationId, e.deviceId, e.step, e.code, e.detail]);
  return createHash('sha256').update(prev).update('\n').update(body).digest('hex');
}

/** Access to the service tables of a fleet database. */
export class ServiceDb {
  constructor(private readonly fleet: FleetDb) {
    fleet.db.exec(SCHEMA);
  }

  private get db() {
    return this.fleet.db;
  }

  /** Every device's stored presence. */
  presence(): PresenceRow[] {
    const rows = this.db.prepare('SELECT device_id AS deviceId, online, since, last_seen AS lastSeen, state FROM presence').all() as { deviceId: string; online: number; since: string; lastSeen: string; state: string }[];
    return rows.map((r) => ({ ...r, online: r.online === 1, state: JSON.parse(r.state) as DeviceState }));
  }

  /** Store a batch of presence rows in one transaction. */
  savePresence(rows: readonly PresenceRow[]): void {
    const put = this.db.prepare('INSERT INTO presence (device_id, online, since, last_seen, state) VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, since = excluded.since, last_seen = excluded.last_seen, state = excluded.state');
    this.fleet.tx(() => {
      for (const r of rows) put.run(r.deviceId, r.online ? 1 : 0, r.since, r.lastSeen, JSON.stringify(r.state));
    });
  }

  /** Append one entry to the audit log (its own transaction unless inside the caller's). */
  appendAudit(e: AuditInput, at: Date): AuditRow {
    return this.fleet.tx(() => {
      const last = this.db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
      const row: Omit<AuditRow, 'hash' | 'prev'> = {
        seq: (last?.seq ?? 0) + 1, at: at.toISOString(), actor: e.actor, action: e.action,
        rotationId: e.rotationId ?? null, deviceId: e.deviceId ?? null, step: e.step ?? null, code: e.code ?? null, detail: e.detail ?? null,
      };
      const prev = last?.hash ?? GENESIS;
      const hash = auditHash(prev, row);
      this.db.prepare('INSERT INTO audit (seq, at, actor, action, rotation_id, device_id, step, code, detail, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(row.seq, row.at, row.actor, row.action, row.rotationId, row.deviceId, row.step, row.code, row.detail ? JSON.stringify(row.detail) : null, prev, hash);
      return { ...row, prev, hash };
    });
  }

  /** Audit entries after `after` (oldest first) or, with `desc`, before `before` (newest first); optionally of one rotation. */
  audit(o: { after?: number; before?: number; desc?: boolean; limit: number; rotationId?: string }): AuditRow[] {
    const where = o.desc ? 'seq < ?' : 'seq > ?';
    const bound = o.desc ? o.before ?? Number.MAX_SAFE_INTEGER : o.after ?? 0;
    const order = o.desc ? 'DESC' : 'ASC';
    const rows = (o.rotationId
      ? this.db.prepare(`SELECT * FROM audit WHERE ${where} AND rotation_id = ? ORDER BY seq ${order} LIMIT ?`).all(bound, o.rotationId, o.limit)
      : this.db.prepare(`SELECT * FROM audit WHERE ${where} ORDER BY seq ${order} LIMIT ?`).all(bound, o.limit)) as Record<string, unknown>[];
    return rows.map((r) => ({
      seq: r.seq as number, at: r.at as string, actor: r.actor as string, action: r.action as string,
      rotationId: r.rotation_id as string | null, deviceId: r.device_id as string | null, step: r.step as string | null,
      code: r.code as string | null, detail: r.detail ? JSON.parse(r.detail as string) as Record<string, unknown> : null,
      prev: r.prev as string, hash: r.hash as string,
    }));
  }

  /** Count audit entries of one action, grouped by code (metrics). */
  auditCounts(action: string): Map<string, number> {
    const rows = this.db.prepare('SELECT code, COUNT(*) AS n FROM audit WHERE action = ? GROUP BY code').all(action) as { code: string | null; n: number }[];
    return new Map(rows.map((r) => [r.code ?? '', r.n]));
  }

  /** Check the hash chain; returns the first broken entry's seq, or null when intact. */
  verifyAudit(): number | null {
    let prev = GENESIS;
    let expect = 1;
    for (const r of this.audit({ limit: Number.MAX_SAFE_INTEGER })) {
      if (r.seq !== expect || r.prev !== prev || auditHash(prev, r) !== r.hash) return r.seq;
      prev = r.hash;
      expect++;
    }
    return null;
  }

  /** Create an API token; returns the secret once (only its SHA-256 is stored). */
  createToken(name: string, role: OperatorRole, now: Date): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new ManagerError('E_BAD_REQUEST', `token name ${JSON.stringify(name)}: use 1-64 of A-Z a-z 0-9 . _ -`);
    const secret = `trt_${randomBytes(24).toString('base64url')}`;
    try {
      this.db.prepare('INSERT INTO api_tokens (name, role, sha256, created_at) VALUES (?, ?, ?, ?)').run(name, role, sha256(secret), now.toISOString());
    } catch (err) {
      if (String((err as Error).message).includes('UNIQUE')) throw new ManagerError('E_BAD_REQUEST', `a token named ${name} exists; revoke it first ("trustroll token revoke --name ${name}")`);
      throw err;
    }
    return secret;
  }

  /** Remove a token; false if there was none. */
  revokeToken(name: string): boolean {
    return this.db.prepare('DELETE FROM api_tokens WHERE name = ?').run(name).changes > 0;
  }

  /** The token's name and role, or null. */
  token(secret: string): { name: string; role: OperatorRole } | null {
    return (this.db.prepare('SELECT name, role FROM api_tokens WHERE sha256 = ?').get(sha256(secret)) as { name: string; role: OperatorRole } | undefined) ?? null;
  }

  /** Token names and roles (never the secrets). */
  tokens(): { name: string; role: OperatorRole; createdAt: string }[] {
    return this.db.prepare('SELECT name, role, created_at AS createdAt FROM api_tokens ORDER BY name').all() as { name: string; role: OperatorRole; createdAt: string }[];
  }
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
