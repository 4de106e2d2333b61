/**
 * The manager service's own tables, in the fleet database next to the
 * rotation state: device presence (online/offline and since when, the last
 * state message), the append-only hash-chained audit log with its
 * manager-wide sequence number, and API tokens (stored as SHA-256 only).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { DeviceState } from '../../protocol/messages/device-state.ts';
import type { FleetDb } from '../fleet/fleet-db.ts';
import { ManagerError } from '../errors.ts';
import type { OperatorRole } from '../pki/operator-pki.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS presence (
  device_id TEXT PRIMARY KEY, online INTEGER NOT NULL, since TEXT NOT NULL, last_seen TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rotation_options (rotation_id TEXT PRIMARY KEY, exclude_offline_after_s INTEGER);
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

  /** A rotation's offline policy: exclude a device offline longer than this many seconds (null: wait for it). */
  excludeOfflineAfter(rotationId: string): number | null {
    const row = this.db.prepare('SELECT exclude_offline_after_s AS s FROM rotation_options WHERE rotation_id = ?').get(rotationId) as { s: number | null } | undefined;
    return row?.s ?? null;
  }

  /** Record a rotation's offline policy. */
  setExcludeOfflineAfter(rotationId: string, seconds: number | null): void {
    this.db.prepare('INSERT INTO rotation_options (rotation_id, exclude_offline_after_s) VALUES (?, ?) ON CONFLICT (rotation_id) DO UPDATE SET exclude_offline_after_s = excluded.exclude_offline_after_s').run(rotationId, seconds);
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
