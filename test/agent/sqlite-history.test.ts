/**
 * The SQLite trust store keeps the last SQLITE_HISTORY steps of history, so
 * the file on a device's flash does not grow forever: older rows are deleted
 * in the same transaction that adds a new one, and a write that does not
 * commit deletes nothing.
 */
import { strict as assert } from 'node:assert';
import Database from 'better-sqlite3';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import type { HistoryEntry } from '../../agent/state-store.ts';
import { deviceFixture, type DeviceFixture } from '../support/device-fixture.ts';

describe('agent: SQLite trust store history', () => {
  let f: DeviceFixture;
  beforeEach(async () => { f = await deviceFixture(); });
  afterEach(async () => { await f.close(); });

  const entry = (seq: number): HistoryEntry => ({ seq, rotationId: 'rot-history', step: `P${seq}`, storeHash: `hash-${seq}`, at: new Date(Date.UTC(2026, 0, 1, 0, seq)).toISOString() });
  const rows = (path: string) => {
    const db = new Database(path, { readonly: true });
    try {
      return (db.prepare('SELECT seq FROM history ORDER BY n').all() as { seq: number }[]).map((r) => r.seq);
    } finally {
      db.close();
    }
  };

  it('keeps the newest entries only, deleting older rows in the write that adds one', async () => {
    const dev = f.server;
    await dev.store.close();
    const store = new SqliteStateStore(dev.dbPath, { historyLimit: 5 });
    const record = (await store.load())!;
    assert.ok(record, 'the fixture device has a record');
    for (let seq = 1; seq <= 12; seq++) await store.save(record, entry(seq));
    assert.deepEqual((await store.history(100)).map((e) => e.seq), [8, 9, 10, 11, 12]);
    assert.deepEqual(rows(dev.dbPath), [8, 9, 10, 11, 12], 'the older rows are gone from the file');
    assert.deepEqual(await store.load(), record, 'the record itself is untouched');
    await store.save(record);
    assert.deepEqual(rows(dev.dbPath), [8, 9, 10, 11, 12], 'a save without a history entry deletes nothing');
    await store.close();

    // A write that fails before COMMIT neither adds its entry nor deletes an old one.
    const failing = new SqliteStateStore(dev.dbPath, { historyLimit: 5, beforeCommit: () => { throw new Error('power lost before COMMIT'); } });
    await assert.rejects(failing.save(record, entry(13)), (e: unknown) => (e as { code?: string }).code === 'E_STORE_IO');
    await failing.close();
    assert.deepEqual(rows(dev.dbPath), [8, 9, 10, 11, 12]);
  });
});
