/**
 * manager/audit/: the audit trail. This file is the room's front, the
 * hash-chained log; around it are what the orchestrator's events write
 * into it (audit-recorder.ts), the re-check of every rotation's order from
 * the log alone (audit-check.ts), the signed checkpoints of its head
 * (audit-note.ts: format; audit-checkpoint.ts: when; audit-checkpoint-store.ts:
 * where), the log checked against them (audit-anchor.ts), and the export
 * (audit-export.ts). docs/audit.md is the auditor's guide.
 *
 * The manager's audit trail: one append-only table in the fleet database,
 * every entry numbered by a manager-wide sequence (order never depends on
 * timestamps) and chained by SHA-256 to the one before, so an edited,
 * removed or reordered entry breaks the chain. It records every command
 * sent (each attempt), every acknowledgement (with the device's own apply
 * time and signature), every error, every rotation status change and
 * every operator action with who made it. `audit-check.ts` re-checks the
 * ordering rules from these entries alone.
 */
import { createHash } from 'node:crypto';
import type { FleetDb } from '../fleet/fleet-db.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  rotation_id TEXT, device_id TEXT, step TEXT, code TEXT, detail TEXT, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_rotation ON audit (rotation_id, seq);
CREATE INDEX IF NOT EXISTS audit_action ON audit (action, code);
`;

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

/** The hash before the first entry. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** SHA-256 over the previous hash and the entry's canonical fields. */
export function auditHash(prev: string, e: Omit<AuditRow, 'hash' | 'prev'>): string {
  const body = JSON.stringify([e.seq, e.at, e.actor, e.action, e.rotationId, e.deviceId, e.step, e.code, e.detail]);
  return createHash('sha256').update(prev).update('\n').update(body).digest('hex');
}

/** Where the chain first breaks, or null when intact. */
export interface ChainBreak {
  seq: number;
  reason: string;
}

/** Check a sequence of entries (oldest first) chains from the genesis without a gap. */
export function verifyChain(rows: Iterable<AuditRow>): ChainBreak | null {
  let prev = AUDIT_GENESIS;
  let expect = 1;
  for (const r of rows) {
    if (r.seq !== expect) return { seq: r.seq, reason: `expected entry #${expect} here, found #${r.seq} (an entry was removed or reordered)` };
    if (r.prev !== prev) return { seq: r.seq, reason: `entry #${r.seq} does not follow entry #${r.seq - 1} (its previous hash differs)` };
    if (auditHash(prev, r) !== r.hash) return { seq: r.seq, reason: `entry #${r.seq} was changed after it was written (its hash does not match its content)` };
    prev = r.hash;
    expect++;
  }
  return null;
}

/** The audit table of one fleet database. */
export class AuditLog {
  private readonly listeners = new Set<(row: AuditRow) => void>();

  constructor(private readonly fleet: FleetDb) {
    fleet.db.exec(SCHEMA);
  }

  /** Be told of every entry this instance appends (the checkpointer); returns the function that stops it. */
  onAppend(listener: (row: AuditRow) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Append one entry (inside the caller's transaction when there is one, else its own). */
  append(e: AuditInput, at: Date): AuditRow {
    return this.fleet.tx(() => {
      // Re-read the tail inside the transaction: another process (the CLI) may have appended.
      const last = this.fleet.db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
      const row: Omit<AuditRow, 'hash' | 'prev'> = {
        seq: (last?.seq ?? 0) + 1, at: at.toISOString(), actor: e.actor, action: e.action,
        rotationId: e.rotationId ?? null, deviceId: e.deviceId ?? null, step: e.step ?? null, code: e.code ?? null, detail: e.detail ?? null,
      };
      const prev = last?.hash ?? AUDIT_GENESIS;
      const hash = auditHash(prev, row);
      this.fleet.db.prepare('INSERT INTO audit (seq, at, actor, action, rotation_id, device_id, step, code, detail, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(row.seq, row.at, row.actor, row.action, row.rotationId, row.deviceId, row.step, row.code, row.detail ? JSON.stringify(row.detail) : null, prev, hash);
      const stored = { ...row, prev, hash };
      for (const l of this.listeners) l(stored);
      return stored;
    });
  }

  /** The chain head as committed: the number of entries and the last one's hash (the genesis hash when empty). */
  head(): { size: number; hash: string } {
    const last = this.fleet.db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
    return last ? { size: last.seq, hash: last.hash } : { size: 0, hash: AUDIT_GENESIS };
  }

  /** The hash of entry `seq` (the genesis hash for 0), or null when there is no such entry. */
  hashAt(seq: number): string | null {
    if (seq === 0) return AUDIT_GENESIS;
    return (this.fleet.db.prepare('SELECT hash FROM audit WHERE seq = ?').get(seq) as { hash: string } | undefined)?.hash ?? null;
  }

  /** Entries after `after` (oldest first) or, with `desc`, before `before` (newest first); optionally of one rotation. */
  entries(o: { after?: number; before?: number; desc?: boolean; limit: number; rotationId?: string }): AuditRow[] {
    const where = o.desc ? 'seq < ?' : 'seq > ?';
    const bound = o.desc ? o.before ?? Number.MAX_SAFE_INTEGER : o.after ?? 0;
    const order = o.desc ? 'DESC' : 'ASC';
    const rows = (o.rotationId
      ? this.fleet.db.prepare(`SELECT * FROM audit WHERE ${where} AND rotation_id = ? ORDER BY seq ${order} LIMIT ?`).all(bound, o.rotationId, o.limit)
      : this.fleet.db.prepare(`SELECT * FROM audit WHERE ${where} ORDER BY seq ${order} LIMIT ?`).all(bound, o.limit)) as Record<string, unknown>[];
    return rows.map(fromDb);
  }

  /** Every entry, oldest first, without loading them all at once. */
  *all(): IterableIterator<AuditRow> {
    for (const r of this.fleet.db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as IterableIterator<Record<string, unknown>>) yield fromDb(r);
  }

  /** Count entries of one action, grouped by code (metrics). */
  counts(action: string): Map<string, number> {
    const rows = this.fleet.db.prepare('SELECT code, COUNT(*) AS n FROM audit WHERE action = ? GROUP BY code').all(action) as { code: string | null; n: number }[];
    return new Map(rows.map((r) => [r.code ?? '', r.n]));
  }

  /** Check the whole chain. */
  verifyChain(): ChainBreak | null {
    return verifyChain(this.all());
  }
}

function fromDb(r: Record<string, unknown>): AuditRow {
  return {
    seq: r.seq as number, at: r.at as string, actor: r.actor as string, action: r.action as string,
    rotationId: r.rotation_id as string | null, deviceId: r.device_id as string | null, step: r.step as string | null,
    code: r.code as string | null, detail: r.detail ? JSON.parse(r.detail as string) as Record<string, unknown> : null,
    prev: r.prev as string, hash: r.hash as string,
  };
}
