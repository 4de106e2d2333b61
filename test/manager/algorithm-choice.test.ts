import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fleetLog, InProcessFleet } from '../../demo/in-process-fleet.ts';
import { checkWithNode, checkWithOpenssl, type FleetSnapshot } from '../../demo/auth-matrix.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';
import { enrollFromCsr } from '../../manager/pki/enrollment.ts';
import { ManagerError } from '../../manager/errors.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { parseVerifies, planNewRoot, rootAlgorithm } from '../../manager/rotation/algorithm-plan.ts';
import { buildCsr } from '../../protocol/csr.ts';
import { BATCHED, SIX_STEP } from '../../protocol/steps.ts';

/** Enrol one more RSA-2048 device with a declared --verifies list. */
async function enrolRsa(fleet: InProcessFleet, id: string, verifies: string[]): Promise<string> {
  const keys = new MemoryKeyStore();
  const key = await keys.create('device', 'RSA-2048');
  const csr = await buildCsr({ commonName: id, spki: key.spki, algorithm: 'RSA-2048', sign: (d) => keys.sign('device', d) });
  return enrollFromCsr(fleet.db, fleet.ca, { deviceId: id, role: 'server', csrPem: csr, now: new Date(), verifies });
}

describe('manager: the new root\'s algorithm and subject (legacy RSA fleets)', function () {
  this.timeout(120_000);
  let fleet: InProcessFleet;
  afterEach(async () => { await fleet?.close(); });

  it('an RSA-2048 fleet stays RSA-2048 by default, with the same subject and then a new one; every state in between authenticates; OldWithNew is stored', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2, caPolicy: { algorithm: 'RSA-2048' }, deviceAlgorithm: 'RSA-2048' });
    const snaps: FleetSnapshot[] = [];
    fleet.onChange((label) => snaps.push(fleet.snapshot(label)));
    const r0 = new X509Certificate(fleet.ca.activeRoot().cert);
    assert.equal(rootAlgorithm(r0.toString()), 'RSA-2048');

    const first = await fleet.rotate(SIX_STEP);
    assert.equal(first.status, 'complete');
    const r1 = new X509Certificate(fleet.ca.activeRoot().cert);
    assert.equal(rootAlgorithm(r1.toString()), 'RSA-2048', 'K1 keeps K0\'s algorithm');
    assert.equal(r1.subject, r0.subject, 'same subject by default');
    assert.notEqual(r1.fingerprint256, r0.fingerprint256);
    const own = new X509Certificate(fleet.db.rotationOldWithNew(first.id)!);
    assert.ok(own.publicKey.equals(r0.publicKey) && own.verify(r1.publicKey), 'OldWithNew = K0 certified by K1, kept with the rotation');

    fleet.rearm();
    const second = await fleet.rotate(BATCHED, { newRoot: { subject: 'CN=Printer Fleet Root 2027,O=trustroll test' } });
    assert.equal(second.status, 'complete');
    const r2 = new X509Certificate(fleet.ca.activeRoot().cert);
    assert.equal(r2.subject, 'CN=Printer Fleet Root 2027\nO=trustroll test');
    assert.equal(rootAlgorithm(r2.toString()), 'RSA-2048');
    for (const a of fleet.agents.values()) {
      assert.deepEqual(a.trustAnchors(), [r2.toString()], `${a.deviceId} trusts only the newest root`);
      assert.ok(new X509Certificate(a.identities()[0]!.cert).verify(r2.publicKey));
    }
    assert.equal(snaps.length, 12 + 6, 'six-step: 3 changes per device; batched: 2 per client, 1 per server');
    for (const s of snaps) assert.deepEqual(checkWithNode(s, new Date()).broken, [], s.label);
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-alg-'));
    try {
      // OpenSSL on the states around the subject change (D of a new DN sits between R1 and the leaves).
      for (const s of snaps.filter((_, i) => i % 4 === 0)) assert.deepEqual(checkWithOpenssl(s, join(dir, String(snaps.indexOf(s)))).broken, [], s.label);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const audit = fleet.verifyAudit();
    assert.equal(audit.chain, null);
    assert.deepEqual(audit.violations, []);
  });

  it('refuses RSA → P-256 when a device declared RSA only (named, nothing started); warns on a move when nobody declared; P-384 works', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 1, caPolicy: { algorithm: 'RSA-2048' }, deviceAlgorithm: 'RSA-2048' });
    const plain = planNewRoot(fleet.db, fleet.ca.activeRoot().cert, { algorithm: 'P-256' });
    assert.deepEqual(plain.unable, []);
    assert.match(plain.warnings.join(' '), /from RSA-2048 to P-256 \(RSA to ECDSA\).*2 device\(s\) declared no algorithms/);
    assert.deepEqual(planNewRoot(fleet.db, fleet.ca.activeRoot().cert).warnings, [], 'keeping RSA warns about nothing');

    await enrolRsa(fleet, 'old-printer-7', parseVerifies('rsa'));
    await assert.rejects(fleet.orchestrator.start({ schedule: SIX_STEP, newRoot: { algorithm: 'P-256' } }), (e: unknown) => {
      assert.ok(e instanceof ManagerError && e.code === 'E_ALGORITHM_UNVERIFIABLE', String(e));
      assert.match(e.message, /a P-256 root cannot be verified by 1 device\(s\).*old-printer-7 \(verifies RSA\).*--algorithm RSA-2048/);
      return true;
    });
    assert.deepEqual(fleet.db.rotations(), [], 'no rotation row');
    assert.equal(rootAlgorithm(fleet.ca.activeRoot().cert), 'RSA-2048');
    // Refused at enrolment too: a device that cannot verify the fleet's root could never authenticate its peers.
    await assert.rejects(enrolRsa(fleet, 'ecdsa-only', ['ECDSA']), (e: unknown) => e instanceof ManagerError && e.code === 'E_ALGORITHM_UNVERIFIABLE' && /fleet root is RSA-2048/.test(e.message));
    assert.throws(() => fleet.db.device('ecdsa-only'), /E_DEVICE_UNKNOWN/);
    assert.throws(() => parseVerifies('RSA,DSA'), /"DSA" is not one of/);
    assert.throws(() => planNewRoot(fleet.db, fleet.ca.activeRoot().cert, { subject: 'XX=bad' }), (e: unknown) => e instanceof ManagerError && e.code === 'E_BAD_REQUEST');

    // A declaration may name one exact algorithm: P-384 is then accepted and P-256 still refused.
    fleet.db.setDeviceVerifies('old-printer-7', ['RSA', 'P-384']);
    assert.deepEqual(planNewRoot(fleet.db, fleet.ca.activeRoot().cert, { algorithm: 'P-384' }).unable, []);
    assert.equal(planNewRoot(fleet.db, fleet.ca.activeRoot().cert, { algorithm: 'P-256' }).unable.length, 1);
  });

  it('an RSA fleet moved to P-256 on purpose (nobody declared RSA only): completes, every state authenticates, the move is logged as a warning', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2, caPolicy: { algorithm: 'RSA-2048' }, deviceAlgorithm: 'RSA-2048' });
    const snaps: FleetSnapshot[] = [];
    fleet.onChange((label) => snaps.push(fleet.snapshot(label)));
    const logged = fleetLog.length;
    const r = await fleet.rotate(SIX_STEP, { newRoot: { algorithm: 'P-256' } });
    assert.equal(r.status, 'complete');
    assert.equal(rootAlgorithm(fleet.ca.activeRoot().cert), 'P-256');
    for (const s of snaps) assert.deepEqual(checkWithNode(s, new Date()).broken, [], s.label);
    const warning = fleetLog.slice(logged).map((l) => JSON.parse(l) as { level: string; msg: string; from?: string; to?: string }).find((l) => l.msg === 'new root algorithm');
    assert.equal(warning?.level, 'warn');
    assert.deepEqual([warning?.from, warning?.to], ['RSA-2048', 'P-256']);
  });

  it('rotates a P-256 fleet to P-384 (SHA-384 signatures) end to end', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 2 });
    const snaps: FleetSnapshot[] = [];
    fleet.onChange((label) => snaps.push(fleet.snapshot(label)));
    const r = await fleet.rotate(SIX_STEP, { newRoot: { algorithm: 'P-384' } });
    assert.equal(r.status, 'complete');
    const root = new X509Certificate(fleet.ca.activeRoot().cert);
    assert.equal(rootAlgorithm(root.toString()), 'P-384');
    for (const s of snaps) assert.deepEqual(checkWithNode(s, new Date()).broken, [], s.label);
  });

  it('adds the verifies and old_with_new columns to a database made before they existed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-schema-'));
    try {
      const path = join(dir, 'manager.db');
      const old = new Database(path);
      old.exec(`CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE devices (id TEXT PRIMARY KEY, role TEXT NOT NULL, common_name TEXT NOT NULL, spki BLOB NOT NULL, certificate TEXT NOT NULL, next_seq INTEGER NOT NULL DEFAULT 1);
        INSERT INTO devices (id, role, common_name, spki, certificate) VALUES ('p1', 'server', 'p1', x'00', 'pem');
        CREATE TABLE rotations (id TEXT PRIMARY KEY, schedule TEXT NOT NULL, status TEXT NOT NULL, unsafe INTEGER NOT NULL,
          distribution TEXT NOT NULL, new_root TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, error TEXT);`);
      old.close();
      const db = new FleetDb(path);
      assert.deepEqual([...db.deviceVerifies()], [], 'an existing device declared nothing: it verifies both');
      db.setDeviceVerifies('p1', ['RSA']);
      assert.deepEqual([...db.deviceVerifies()], [['p1', ['RSA']]]);
      assert.equal(db.rotationOldWithNew('none'), null);
      assert.equal(db.device('p1').id, 'p1');
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
