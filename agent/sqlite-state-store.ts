/**
 * Device record in SQLite (better-sqlite3): WAL with synchronous=FULL, one
 * row for the record plus its history (the last SQLITE_HISTORY steps; older
 * rows are deleted as new ones are added), written in one transaction so a
 * crash leaves either the old or the new state.
 */
import Database from 'better-sqlite3';
import { ProtocolError } from '../protocol/errors.ts';
import type { DeviceRecord } from './device-record.ts';
import { openRecord, sealRecord, type HistoryEntry, type StateStore } from './state-store.ts';

/**
 * History rows kept: about ten steps per rotation, so a hundred rotations of
 * a device's life, in a file that does not grow on the device's flash
 * forever (the HAL record store keeps 16).
 */
export const SQLITE_HISTORY = 1000;

/** Test hooks: runs inside the write transaction, before COMMIT (to simulate power loss); a smaller history. */
export interface SqliteStoreHooks {
  beforeCommit?: () => void;
  historyLimit?: number;
}

/** SQLite-backed StateStore. */
export class SqliteStateStore implements StateStore {
  private readonly db: Database.Database;
  private writeTx: (record: DeviceRecord, entry?: HistoryEntry) => void;

  constructor(readonly path: string, hooks: SqliteStoreHooks = {}, opts: { readonly?: boolean } = {}) {
    try {
      this.db = new Database(path, opts.readonly ? { readonly: true, fileMustExist: true } : {});
      if (opts.readonly) {
        this.writeTx = () => {
          throw new ProtocolError('E_STORE_IO', `${path} is open read-only`);
        };
        return;
      }
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS device_state (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          body TEXT NOT NULL,
          hash TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS history (
          n INTEGER PRIMARY KEY AUTOINCREMENT,
          seq INTEGER NOT NULL,
          rotation_id TEXT NOT NULL,
          step TEXT NOT NULL,
          store_hash TEXT NOT NULL,
          at TEXT NOT NULL
        );`);
    } catch (err) {
      throw new ProtocolError('E_STORE_CORRUPT', `${path}: cannot open the trust store database (${(err as Error).message})`);
    }
    this.writeTx = this.prepareWrite(hooks);
  }

  private prepareWrite(hooks: SqliteStoreHooks): (record: DeviceRecord, entry?: HistoryEntry) => void {
    const upsert = this.db.prepare('INSERT INTO device_state (id, body, hash) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body, hash = excluded.hash');
    const append = this.db.prepare('INSERT INTO history (seq, rotation_id, step, store_hash, at) VALUES (?, ?, ?, ?, ?)');
    const prune = this.db.prepare('DELETE FROM history WHERE n <= ?');
    const keep = hooks.historyLimit ?? SQLITE_HISTORY;
    return this.db.transaction((record: DeviceRecord, entry?: HistoryEntry) => {
      const { body, hash } = sealRecord(record);
      upsert.run(body, hash);
      if (entry) {
        const n = Number(append.run(entry.seq, entry.rotationId, entry.step, entry.storeHash, entry.at).lastInsertRowid);
        prune.run(n - keep);
      }
      hooks.beforeCommit?.();
    });
  }

  async load(): Promise<DeviceRecord | null> {
    let row: { body: string; hash: string } | undefined;
    try {
      row = this.db.prepare('SELECT body, hash FROM device_state WHERE id = 1').get() as typeof row;
    } catch (err) {
      throw new ProtocolError('E_STORE_CORRUPT', `${this.path}: cannot read the trust store (${(err as Error).message})`);
    }
    return row ? openRecord(row.body, row.hash, this.path) : null;
  }

  async save(record: DeviceRecord, entry?: HistoryEntry): Promise<void> {
    try {
      this.writeTx(record, entry);
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw new ProtocolError('E_STORE_IO', `${this.path}: trust store write failed (${(err as Error).message}); nothing was changed`);
    }
  }

  /** SQLite's own page-level check (PRAGMA quick_check): null when the file is intact, else what it found. */
  integrityProblems(): string | null {
    try {
      const rows = this.db.pragma('quick_check') as { quick_check: string }[];
      const found = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
      return found.length ? found.slice(0, 3).join('; ') : null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  async history(limit: number): Promise<HistoryEntry[]> {
    const rows = this.db.prepare('SELECT seq, rotation_id AS rotationId, step, store_hash AS storeHash, at FROM history ORDER BY n DESC LIMIT ?').all(limit) as HistoryEntry[];
    return rows.reverse();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
