import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Agent } from '../../agent/agent.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { createLogger } from '../../protocol/log.ts';
import { isProtocolError } from '../../protocol/errors.ts';
import { deviceFixture, type DeviceFixture, type TestDevice } from '../support/device-fixture.ts';

const CHILD = fileURLToPath(new URL('./fixtures/crash-child.ts', import.meta.url));

describe('agent: power loss and corruption', () => {
  let f: DeviceFixture;
  beforeEach(async () => { f = await deviceFixture(); });
  afterEach(async () => { await f.close(); });

  function crashWhileApplying(dev: TestDevice, raw: string, mode: 'mid-transaction' | 'after-persist') {
    const file = join(f.dir, 'cmd.json');
    writeFileSync(file, raw);
    const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, dev.dbPath, file, mode, dev.id, dev.role, f.clock.now().toISOString()], { encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL', `child should die by SIGKILL (status ${r.status}, stderr ${r.stderr})`);
    assert.equal(r.stdout, '', 'no acknowledgement left the dying device');
  }

  const reopen = async (dev: TestDevice) => {
    const store = new SqliteStateStore(dev.dbPath);
    const agent = await Agent.open({ deviceId: dev.id, role: dev.role, store, keys: dev.keys, clock: f.clock, logger: createLogger({ level: 'error' }) });
    return { store, agent };
  };

  it('a crash in the middle of the write transaction leaves the old state', async () => {
    const dev = f.server;
    const before = dev.agent.snapshot();
    crashWhileApplying(dev, JSON.stringify(f.command(dev, 1, 'P1', { distribution: f.update.distribution })), 'mid-transaction');
    const { store, agent } = await reopen(dev);
    assert.deepEqual(agent.snapshot(), before, 'old record, intact and passing its integrity check');
    assert.equal((await store.history(5)).length, 0);
    const ack = await agent.handle(f.command(dev, 1, 'P1', { distribution: f.update.distribution }));
    assert.equal(ack.ok, true, 'the redelivered step applies normally');
    await store.close();
  });

  it('a crash between the durable write and the acknowledgement re-acknowledges on redelivery', async () => {
    const dev = f.client;
    const raw = JSON.stringify(f.command(dev, 1, 'P2', { distribution: f.update.distribution }));
    crashWhileApplying(dev, raw, 'after-persist');
    const { store, agent } = await reopen(dev);
    assert.deepEqual(agent.snapshot().rotation?.completed, ['P2'], 'the step was durable before the crash');
    const ack = await agent.handle(raw);
    assert.equal(ack.ok, true);
    assert.equal(ack.seq, 1);
    assert.deepEqual(ack.state.completed, ['P2']);
    const again = await agent.handle(raw);
    assert.deepEqual(again, ack, 'the same acknowledgement every time');
    assert.equal((await store.history(5)).length, 1, 'applied exactly once');
    await store.close();
  });

  it('a store whose content no longer matches its hash is refused at start (E_STORE_CORRUPT)', async () => {
    const dev = f.server;
    await dev.store.close();
    const db = new Database(dev.dbPath);
    const row = db.prepare('SELECT body FROM device_state').get() as { body: string };
    db.prepare('UPDATE device_state SET body = ?').run(row.body.replace('"lastSeq":0', '"lastSeq":9'));
    db.close();
    await assert.rejects(reopen(dev), (e: unknown) => isProtocolError(e, 'E_STORE_CORRUPT') && /hash mismatch/.test((e as Error).message));
  });

  it('a store file that is not a database is refused at start (E_STORE_CORRUPT)', async () => {
    const dev = f.server;
    await dev.store.close();
    writeFileSync(dev.dbPath, Buffer.alloc(8192, 0x5a));
    await assert.rejects(reopen(dev), (e: unknown) => isProtocolError(e, 'E_STORE_CORRUPT'));
  });
});
