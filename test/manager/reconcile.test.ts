/**
 * The manager's regression repair (manager/fleet/reconcile.ts) on a real fleet
 * database: a device reporting a lastSeq below what it acknowledged gets
 * the lost commands re-sent one at a time in sequence order (at once when
 * it flags the roll-back itself, after a grace period otherwise, so a state
 * message overtaken by an acknowledgement is not mistaken for one); a
 * device holding everything gets nothing; a re-enrolled device's old
 * acknowledgements are never re-sent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { Reconciler, setBaseline, type Regression } from '../../manager/fleet/reconcile.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Command } from '../../protocol/messages/command.ts';
import type { DeviceState } from '../../protocol/messages/device-state.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('manager: reconcile (re-send acknowledged steps a device lost)', () => {
  let dir: string;
  let db: FleetDb;
  let sent: Command[];
  let events: string[];
  let r: Reconciler;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-reconcile-'));
    db = new FleetDb(join(dir, 'manager.db'));
    db.addDevice({ id: 'printer-1', role: 'server', commonName: 'printer-1', spki: Buffer.from('k'), certificate: 'c' });
    db.insertRotation({ id: 'rot-1', schedule: 'six-step', status: 'complete', unsafe: false, distribution: 'd', newRoot: 'r', createdAt: 'x', updatedAt: 'x', error: null }, new Map(), ['P1', 'P4', 'P5'].map((step) => ({ deviceId: 'printer-1', step })));
    for (const [i, step] of ['P1', 'P4', 'P5'].entries()) {
      const cmd = { v: 1, kind: 'command', deviceId: 'printer-1', rotationId: 'rot-1', schedule: 'six-step', seq: i + 1, step, issuedAt: '2026-01-01T00:00:00.000Z', payload: {} };
      db.updateStep({ rotationId: 'rot-1', deviceId: 'printer-1', step, status: 'acked', seq: i + 1, attempts: 1, command: JSON.stringify(cmd), sentAt: 'x', ackedAt: 'x', dueAt: null, errorCode: null, errorMessage: null });
    }
    sent = [];
    events = [];
    r = new Reconciler({
      db, send: (c) => sent.push(c), logger: createLogger({ level: 'error', sink: () => undefined }), graceMs: 80, resendMs: 200,
      events: { detected: (x: Regression) => events.push(`detected ${x.fromSeq}->${x.toSeq}`), repaired: (x: Regression) => events.push(`repaired ${x.resent}`) },
    });
  });
  afterEach(() => {
    r.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const state = (lastSeq: number, flagged = false): DeviceState => ({
    v: 1, kind: 'state', deviceId: 'printer-1', status: 'online', lastSeq,
    ...(flagged ? { regression: { code: 'E_STORE_REGRESSED', lostWrites: 3 - lastSeq, missingWrites: 3 - lastSeq, loadedSeq: lastSeq, detectedAt: '2026-01-01T00:00:00.000Z', message: 'x' } } : {}),
  });

  it('a device holding every acknowledged step gets nothing', async () => {
    r.onState(state(3));
    await sleep(150);
    assert.deepEqual(sent, []);
    assert.deepEqual(r.regressions().open, []);
  });

  it('a self-reported roll-back: the lost commands at once, one at a time in order, until repaired', async () => {
    r.onState(state(1, true));
    assert.deepEqual(sent.map((c) => c.seq), [2], 'only the next one');
    r.onState(state(1, true));
    assert.deepEqual(sent.map((c) => c.seq), [2], 'not again before resendMs');
    r.onState(state(2, true));
    assert.deepEqual(sent.map((c) => [c.seq, c.step]), [[2, 'P4'], [3, 'P5']]);
    r.onState(state(3));
    assert.deepEqual(events, ['detected 1->3', 'repaired 2']);
    assert.equal(r.regressions().repaired.length, 1);
    assert.equal(sent[0]!.rotationId, 'rot-1', 'the stored command, unchanged');
  });

  it('without the flag it waits out the grace period, and a newer state in between cancels it', async () => {
    r.onState(state(2));
    r.onState(state(3));
    await sleep(150);
    assert.equal(sent.length, 0, 'a state overtaken by an acknowledgement is not a regression');
    r.onState(state(0));
    assert.equal(sent.length, 0);
    await sleep(150);
    assert.deepEqual(sent.map((c) => c.seq), [1]);
    await sleep(300);
    assert.deepEqual(sent.map((c) => c.seq), [1, 1], 'sent again when the device did not move on');
  });

  it('a re-enrolled device (new store) never gets its old acknowledgements', async () => {
    setBaseline(db, 'printer-1', 3);
    r.onState(state(0, true));
    await sleep(150);
    assert.deepEqual(sent, []);
  });
});
