import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { computeWaits } from '../../manager/service/rotation-view.ts';
import { Presence } from '../../manager/service/presence.ts';
import { ServiceDb } from '../../manager/service/service-db.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { describeRotationStatus, rotationStatus } from '../../manager/rotation/rotation-status.ts';
import { firstBlockers, whoWaits } from '../../manager/rotation/waits.ts';
import { SIX_STEP } from '../../protocol/steps.ts';

describe('who waits for whom (rotation view)', () => {
  let dir: string;
  let db: FleetDb;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-waits-'));
    db = new FleetDb(join(dir, 'manager.db'));
    // 300 printers have done P1; their P4 waits for P2 of the one client, which has not acknowledged it.
    const servers = Array.from({ length: 300 }, (_, i) => `printer-${i + 1}`);
    for (const id of [...servers, 'console-1']) db.addDevice({ id, role: id === 'console-1' ? 'client' : 'server', commonName: id, spki: Buffer.from(id), certificate: 'unused' });
    const steps = [...servers.flatMap((id) => ['P1', 'P4', 'P5'].map((step) => ({ deviceId: id, step }))), ...['P2', 'P3', 'P6'].map((step) => ({ deviceId: 'console-1', step }))];
    const at = '2026-12-01T00:00:00.000Z';
    db.insertRotation({ id: 'rot-1', schedule: 'six-step', status: 'running', unsafe: false, distribution: 'unused', newRoot: 'unused', createdAt: at, updatedAt: at, error: null }, new Map(), steps);
    for (const r of db.steps('rot-1')) if (r.step === 'P1') db.updateStep({ ...r, status: 'acked', ackedAt: at });
  });
  after(() => { db.close(); rmSync(dir, { recursive: true, force: true }); });

  it('lists at most 200 waits for the fleet, but answers for any one device, however far down the fleet it is', () => {
    const presence = new Presence(new ServiceDb(db), new ManualClock(new Date('2026-12-01T00:00:00Z')), () => undefined);
    const rows = db.steps('rot-1');
    const all = computeWaits(db, SIX_STEP, rows, presence);
    assert.equal(all.waitsTotal, 300);
    assert.equal(all.waits.length, 200);
    assert.deepEqual(all.blockers.map((b) => [b.deviceId, b.step, b.blocks]), [['console-1', 'P2', 300]]);
    const one = computeWaits(db, SIX_STEP, rows, presence, { deviceId: 'printer-300' });
    assert.equal(one.waits.length, 1);
    assert.equal(one.waits[0]!.deviceId, 'printer-300');
    assert.equal(one.waits[0]!.step, 'P4');
    assert.deepEqual(one.waits[0]!.waitingFor.map((w) => `${w.step} of ${w.deviceId}`), ['P2 of console-1']);
  });
});

describe('who waits for whom: one answer for trustroll status, the API and the dashboard (10,000 devices)', function () {
  this.timeout(30_000);
  const SERVERS = 8_000;
  const CLIENTS = 2_000;
  const LATE = 500; // clients that have not acknowledged P2: every server's P4 waits for all of them
  let dir: string;
  let db: FleetDb;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-waits-10k-'));
    db = new FleetDb(join(dir, 'manager.db'));
    const pad = (n: number, w: number) => String(n).padStart(w, '0');
    const servers = Array.from({ length: SERVERS }, (_, i) => `printer-${pad(i + 1, 5)}`);
    const clients = Array.from({ length: CLIENTS }, (_, i) => `console-${pad(i + 1, 4)}`);
    db.tx(() => {
      for (const id of servers) db.addDevice({ id, role: 'server', commonName: id, spki: Buffer.from(id), certificate: 'unused' });
      for (const id of clients) db.addDevice({ id, role: 'client', commonName: id, spki: Buffer.from(id), certificate: 'unused' });
    });
    const steps = [...servers.flatMap((id) => ['P1', 'P4', 'P5'].map((step) => ({ deviceId: id, step }))), ...clients.flatMap((id) => ['P2', 'P3', 'P6'].map((step) => ({ deviceId: id, step })))];
    const at = '2026-12-01T00:00:00.000Z';
    db.insertRotation({ id: 'rot-10k', schedule: 'six-step', status: 'running', unsafe: false, distribution: 'unused', newRoot: 'unused', createdAt: at, updatedAt: at, error: null }, new Map(), steps);
    db.db.prepare("UPDATE steps SET status = 'acked', acked_at = ? WHERE rotation_id = 'rot-10k' AND step = 'P1'").run(at);
    db.db.prepare("UPDATE steps SET status = 'acked', acked_at = ? WHERE rotation_id = 'rot-10k' AND step = 'P2' AND device_id <= ?").run(at, clients[CLIENTS - LATE - 1]);
    db.db.prepare("UPDATE steps SET status = 'sent', seq = 1, attempts = 2 WHERE rotation_id = 'rot-10k' AND step = 'P2' AND device_id > ?").run(clients[CLIENTS - LATE - 1]);
  });
  after(() => { db.close(); rmSync(dir, { recursive: true, force: true }); });

  const timed = <T>(what: string, fn: () => T): T => {
    const t0 = performance.now();
    const out = fn();
    const ms = performance.now() - t0;
    process.stderr.write(`      ${what}: ${ms.toFixed(0)} ms\n`);
    assert.ok(ms < 5_000, `${what} took ${ms.toFixed(0)} ms: the answer must stay O(devices + edges), not devices x peers`);
    return out;
  };

  it('every waiting device with every device-step it waits for, and every count, in one pass', () => {
    const rows = db.steps('rot-10k');
    const w = timed('whoWaits', () => whoWaits(db, SIX_STEP, rows));
    assert.equal(w.roles.size, SERVERS + CLIENTS);
    assert.equal(w.waits.length, SERVERS, 'the P4 of every printer waits');
    for (const x of w.waits) {
      assert.equal(x.step, 'P4');
      assert.equal(x.count, LATE);
      assert.equal(x.on[0], w.waits[0]!.on[0], 'one shared list of the late consoles, not one per printer');
    }
    assert.deepEqual(w.waits[0]!.on.map((g) => [g.step, g.devices.length, g.devices[0], g.devices.at(-1)]), [['P2', LATE, 'console-1501', 'console-2000']]);
    assert.equal(w.holdUps.length, LATE);
    assert.ok(w.holdUps.every((h) => h.step === 'P2' && h.blocks === SERVERS), 'each late console holds up every printer');
    assert.deepEqual(firstBlockers(w.waits[0]!, 3), [{ deviceId: 'console-1501', step: 'P2' }, { deviceId: 'console-1502', step: 'P2' }, { deviceId: 'console-1503', step: 'P2' }]);
  });

  it('trustroll status (full lists, with counts) and the API (the same counts, lists cut for the page) give that answer', () => {
    const st = timed('rotationStatus', () => rotationStatus(db, 'rot-10k'));
    assert.equal(st.waitsTotal, SERVERS);
    assert.equal(st.blockers.length, LATE);
    assert.ok(st.blockers.every((b) => b.blocks === SERVERS));
    const printer = st.devices.find((d) => d.deviceId === 'printer-08000')!;
    assert.equal(printer.waitingFor.length, LATE, 'the JSON names every device-step');
    assert.equal(printer.waitingFor[0], 'console-1501:P2');
    assert.ok(st.devices.filter((d) => d.role === 'client').every((d) => d.waitingFor.length === 0));
    const text = timed('describeRotationStatus', () => describeRotationStatus(st));
    assert.match(text, /\n {2}printer-08000 \(server\): P1=acked P4=pending P5=pending {2}waiting for console-1501:P2, console-1502:P2, console-1503:P2, console-1504:P2, console-1505:P2 and 495 more/);

    const presence = new Presence(new ServiceDb(db), new ManualClock(new Date('2026-12-01T00:00:00Z')), () => undefined);
    const api = timed('computeWaits', () => computeWaits(db, SIX_STEP, db.steps('rot-10k'), presence));
    assert.equal(api.waitsTotal, st.waitsTotal);
    assert.equal(api.waits.length, 200, 'the page shows 200 waits');
    for (const x of api.waits) {
      const line = st.devices.find((d) => d.deviceId === x.deviceId)!;
      assert.deepEqual(x.waitingFor.map((b) => `${b.deviceId}:${b.step}`), line.waitingFor.slice(0, 5), `${x.deviceId}: the page's first blockers are the status's first`);
      assert.equal(x.more, line.waitingFor.length - 5);
    }
    assert.equal(api.blockers.length, 100, 'the page shows the 100 most-blocking');
    const counts = new Map(st.blockers.map((b) => [`${b.deviceId}:${b.step}`, b.blocks]));
    for (const b of api.blockers) assert.equal(b.blocks, counts.get(`${b.deviceId}:${b.step}`));
    const one = computeWaits(db, SIX_STEP, db.steps('rot-10k'), presence, { deviceId: 'printer-08000' });
    assert.deepEqual(one.waits.map((x) => [x.deviceId, x.more]), [['printer-08000', LATE - 5]]);
  });
});
