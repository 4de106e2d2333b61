import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyAudit } from '../../manager/audit/audit-check.ts';
import { AuditLog } from '../../manager/audit/audit-log.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { rootAlgorithm } from '../../manager/rotation/algorithm-plan.ts';
import type { CertificatesView, FleetPage, RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';
import { fileURLToPath } from 'node:url';

const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));

/** OpenSSL `verify`, strict, with only `caFile` as trust anchors. */
function opensslVerify(caFile: string, certFile: string, ...extra: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', ['verify', '-no-CApath', '-no-CAstore', '-x509_strict', '-CAfile', caFile, ...extra, certFile], { encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

/** GnuTLS `certtool --verify` of a chain file (leaf first) against `caFile`. */
function gnutlsVerify(caFile: string, chainFile: string): { ok: boolean; out: string } {
  const r = spawnSync('certtool', ['--verify', '--load-ca-certificate', caFile, '--infile', chainFile], { encoding: 'utf8' });
  return { ok: r.status === 0 && /Chain verification output: Verified/.test(r.stdout), out: r.stdout + r.stderr };
}

describe('an RSA-2048 fleet rotated through trustroll serve over Mosquitto with agent processes: same subject, then a new one; a P-256 root refused for an RSA-only printer', function () {
  this.timeout(300_000);
  let fleet: ServiceFleet;
  before(async () => {
    fleet = await ServiceFleet.create({ servers: 2, clients: 2, caAlgorithm: 'RSA-2048', deviceAlgorithm: 'RSA-2048', verifies: { 'printer-1': ['RSA'] }, ackTimeoutMs: 3000 });
  });
  after(async () => { await fleet?.close(); });

  const dbRead = <T>(fn: (db: FleetDb, log: AuditLog) => T): T => {
    const db = new FleetDb(join(fleet.dataDir, 'manager.db'));
    try {
      return fn(db, new AuditLog(db));
    } finally {
      db.close();
    }
  };
  const file = (name: string, pem: string) => {
    const p = join(fleet.dir, name);
    writeFileSync(p, pem);
    return p;
  };
  const clientsTls = async () => (await fleet.api<FleetPage>('/api/fleet?role=client')).body.devices.map((d) => ({ id: d.id, tls: d.tls }));
  const rotate = async (body: object): Promise<RotationSummary> => {
    const start = await fleet.api<RotationSummary>('/api/rotations', { body });
    assert.equal(start.status, 201, start.text);
    return fleet.until(`rotation ${start.body.id} complete`, async () => {
      const r = (await fleet.api<RotationSummary>(`/api/rotations/${start.body.id}`)).body;
      assert.notEqual(r.status, 'failed', r.error ?? '');
      return r.status === 'complete' ? { ...r, warnings: start.body.warnings, algorithm: start.body.algorithm } : null;
    }, 150_000);
  };
  /** Every device's certificate verifies under the active root with OpenSSL and GnuTLS. */
  const chainsVerify = (label: string) => {
    const { root, certs } = dbRead((db) => ({ root: db.rotations().at(-1)!.newRoot, certs: db.devices().map((d) => [d.id, d.certificate] as const) }));
    const rootFile = file(`${label}-root.pem`, root);
    for (const [id, pem] of certs) {
      const leaf = file(`${label}-${id}.pem`, pem);
      const o = opensslVerify(rootFile, leaf);
      assert.ok(o.ok, `${label}: OpenSSL ${id}: ${o.out}`);
      const g = gnutlsVerify(rootFile, leaf);
      assert.ok(g.ok, `${label}: GnuTLS ${id}: ${g.out}`);
    }
  };

  it('refuses a P-256 root: printer-1 declared it verifies RSA only (409, named, audited, nothing started); bad choices are 400', async () => {
    await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet')).body.counts.online === 4);
    const refused = await fleet.api<{ error: { code: string; message: string } }>('/api/rotations', { body: { schedule: 'six-step', algorithm: 'P-256' } });
    assert.equal(refused.status, 409, refused.text);
    assert.equal(refused.body.error.code, 'E_ALGORITHM_UNVERIFIABLE');
    assert.match(refused.body.error.message, /printer-1 \(verifies RSA\)/);
    assert.match(refused.body.error.message, /--algorithm RSA-2048/);
    assert.deepEqual((await fleet.api<{ rotations: unknown[] }>('/api/rotations')).body.rotations, []);
    const audited = dbRead((_db, log) => log.entries({ limit: 1000 }).find((e) => e.action === 'operator.start'));
    assert.equal(audited?.code, 'E_ALGORITHM_UNVERIFIABLE');
    const none = spawnSync(process.execPath, [MANAGER_BIN, 'ca', 'old-with-new', '--data', fleet.dataDir], { encoding: 'utf8' });
    assert.notEqual(none.status, 0);
    assert.match(none.stderr, /no root rotation .* has an OldWithNew yet/);
    // The same through the CLI, which hands the start to the running service.
    const cli = spawnSync(process.execPath, [MANAGER_BIN, 'rotate', '--data', fleet.dataDir, '--mgmt', fleet.mgmtDir, '--algorithm', 'P-256', '--subject', 'CN=Fleet Root EC,O=x'], { encoding: 'utf8' });
    assert.notEqual(cli.status, 0);
    assert.match(cli.stderr, /printer-1 \(verifies RSA\).*\(E_ALGORITHM_UNVERIFIABLE\)/);
    const mixed = spawnSync(process.execPath, [MANAGER_BIN, 'rotate', '--data', fleet.dataDir, '--mgmt', fleet.mgmtDir, '--algorithm', 'P-256', '--resume'], { encoding: 'utf8' });
    assert.match(mixed.stderr, /--algorithm, --subject.* choose how a rotation that starts goes; they do not apply to --resume or --abort/);
    for (const body of [{ schedule: 'six-step', algorithm: 'RSA-1024' }, { schedule: 'six-step', subject: 'XX=nope' }]) {
      const bad = await fleet.api<{ error: { code: string } }>('/api/rotations', { body });
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.body.error.code, 'E_BAD_REQUEST');
    }
  });

  it('six-step keeps RSA-2048 and the subject; OldWithNew from GET /api/certificates lets a holder of R1 alone verify a K0 leaf (OpenSSL, GnuTLS)', async () => {
    const before = dbRead((db) => ({ leaf: db.device('printer-2').certificate }));
    const root0 = (await fleet.api<CertificatesView>('/api/certificates')).body.roots.find((r) => r.kind === 'active-root')!;
    const r = await rotate({ schedule: 'six-step' });
    assert.equal(r.algorithm, 'RSA-2048');
    assert.deepEqual(r.warnings, [], 'keeping the algorithm warns about nothing');
    const view = (await fleet.api<CertificatesView>('/api/certificates')).body;
    const active = view.roots.find((x) => x.kind === 'active-root')!;
    assert.equal(active.subject, root0.subject, 'same subject');
    assert.notEqual(active.sha256, root0.sha256);
    const own = view.roots.find((x) => x.kind === 'old-with-new');
    assert.ok(own?.pem, 'OldWithNew is published with its PEM');
    const printed = spawnSync(process.execPath, [MANAGER_BIN, 'ca', 'old-with-new', '--data', fleet.dataDir], { encoding: 'utf8' });
    assert.equal(printed.status, 0, printed.stderr);
    assert.equal(printed.stdout, own.pem, 'trustroll ca old-with-new prints the same certificate');
    const r1 = dbRead((db) => db.rotations().at(-1)!.newRoot);
    assert.equal(rootAlgorithm(r1), 'RSA-2048');
    const r1File = file('r1.pem', r1);
    const oldLeaf = file('printer-2-k0.pem', before.leaf);
    const ownFile = file('own.pem', own.pem);
    assert.ok(!opensslVerify(r1File, oldLeaf).ok, 'R1 alone does not verify a K0 leaf');
    const via = opensslVerify(r1File, oldLeaf, '-untrusted', ownFile);
    assert.ok(via.ok, via.out);
    const g = gnutlsVerify(r1File, file('printer-2-k0-chain.pem', before.leaf + own.pem));
    assert.ok(g.ok, g.out);
    assert.ok(new X509Certificate(before.leaf).verify(new X509Certificate(own.pem).publicKey), 'OldWithNew certifies K0, the key that signed the old leaf');
    chainsVerify('same-subject');
  });

  it('batched with a new subject keeps RSA-2048; chains verify with OpenSSL and GnuTLS; no client handshake failed over both rotations', async () => {
    const mid = await clientsTls();
    const r = await rotate({ schedule: 'batched', subject: 'CN=Printer Fleet Root 2027,O=trustroll service test' });
    assert.equal(r.algorithm, 'RSA-2048');
    const active = (await fleet.api<CertificatesView>('/api/certificates')).body.roots.find((x) => x.kind === 'active-root')!;
    assert.match(active.subject, /Printer Fleet Root 2027/);
    chainsVerify('new-subject');
    await fleet.until('the clients handshake under the new root', async () => {
      const now = await clientsTls();
      return now.every((d) => (d.tls?.ok ?? 0) > (mid.find((m) => m.id === d.id)?.tls?.ok ?? 0) + 5);
    });
    for (const d of await clientsTls()) {
      assert.ok((d.tls?.ok ?? 0) > 20, `${d.id} handshook throughout (${JSON.stringify(d.tls)})`);
      assert.equal(d.tls?.failed, 0, `${d.id}: no failed handshake (${JSON.stringify(d.tls)})`);
    }
    const report = dbRead((_db, log) => verifyAudit(log.all()));
    assert.equal(report.chain, null);
    assert.deepEqual(report.violations, []);
  });
});
