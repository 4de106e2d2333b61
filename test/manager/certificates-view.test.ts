/**
 * The certificates view (GET /api/certificates, the dashboard's timeline)
 * shows every fleet root: one for a single-root fleet, the server and the
 * client root of a fleet with separate roots, and D and R1 of an open
 * rotation named with the root they replace.
 */
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { InProcessTransport } from '../../manager/transport/in-process-transport.ts';
import { buildOrchestrator } from '../../manager/manager.ts';
import { certificatesView } from '../../manager/service/certificates-view.ts';
import type { ManagerService } from '../../manager/service/manager-service.ts';
import { systemClock, systemTimers } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import { fingerprint } from '../../protocol/pem.ts';
import { CLIENT_ROOT } from '../../protocol/steps.ts';

const fp = (pem: string) => fingerprint(new X509Certificate(pem));

describe('certificates view: the fleet roots', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-cert-view-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The view over a real CA and fleet database; the other CAs are the fleet roots themselves (not under test). */
  const view = (ca: CaAuthority, db: FleetDb) => {
    const service = { m: { ca, db }, fleet: { all: () => [] } } as unknown as ManagerService;
    const other = ca.activeRoot(ca.separateRoots() ? 'server' : undefined).cert;
    return certificatesView(service, { operatorCa: other, mgmtCa: other }).roots.filter((r) => r.kind !== 'management-ca' && r.kind !== 'operator-ca');
  };

  it('a single-root fleet: one active root, without a side', async () => {
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Fleet Root', now: new Date() });
    const db = new FleetDb(join(dir, 'manager.db'));
    try {
      const roots = view(ca, db);
      assert.deepEqual(roots.map((r) => [r.kind, r.name, r.side]), [['active-root', 'fleet root (active)', undefined]]);
      assert.equal(roots[0]!.sha256, fp(ca.activeRoot().cert));
    } finally {
      db.close();
    }
  });

  it('separate roots: both active roots, and D and R1 of an open client-root rotation named with their side', async () => {
    const now = new Date();
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Server Root', clientSubject: 'CN=Client Root', now });
    const db = new FleetDb(join(dir, 'manager.db'));
    const keys = new MemoryKeyStore();
    try {
      for (const [id, role] of [['srv-1', 'server'], ['cli-1', 'client']] as const) {
        const spki = (await keys.create(id, 'P-256')).spki;
        db.addDevice({ id, role, commonName: id, spki, certificate: ca.issueLeaf({ commonName: id, spki, role }, now) });
      }
      const before = view(ca, db);
      assert.deepEqual(before.map((r) => [r.kind, r.side, r.sha256]), [
        ['active-root', 'server', fp(ca.activeRoot('server').cert)],
        ['active-root', 'client', fp(ca.activeRoot('client').cert)],
      ]);
      assert.deepEqual(before.map((r) => r.name), ['server root (active)', 'client root (active)']);

      const orchestrator = buildOrchestrator({ db, authority: ca, transport: new InProcessTransport({ timers: systemTimers }), logger: createLogger({ level: 'error' }), clock: systemClock, verifyAcks: false });
      try {
        const id = await orchestrator.start({ schedule: CLIENT_ROOT });
        const rot = db.rotation(id)!;
        const open = view(ca, db);
        assert.deepEqual(open.map((r) => [r.kind, r.side]), [['active-root', 'server'], ['active-root', 'client'], ['distribution', 'client'], ['new-root', 'client'], ['old-with-new', 'client']]);
        assert.match(open[4]!.name, /^old client root certified by the new key, /);
        assert.equal(open[2]!.sha256, fp(rot.distribution));
        assert.equal(open[3]!.sha256, fp(rot.newRoot));
        assert.match(open[3]!.name, new RegExp(`^new root R1 of the client root's rotation ${id} \\(NewWithNew\\)$`));
      } finally {
        orchestrator.close();
      }
    } finally {
      db.close();
    }
  });
});
