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
import { systemClock, systemTimers } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import { fingerprint } from '../../protocol/pem.ts';
import { CLIENT_ROOT, SIX_STEP } from '../../protocol/steps.ts';

const fp = (pem: string) => fingerprint(new X509Certificate(pem));
const rejectsCode = (p: Promise<unknown>, code: string) => assert.rejects(p, (e: Error & { code?: string }) => e.code === code);

describe('manager: a CA with separate client and server roots', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-separate-ca-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('signs each role with its own root, refuses rotations of the wrong layout, and activates only the rotated root', async () => {
    const now = new Date();
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Server Root', clientSubject: 'CN=Client Root', now });
    assert.equal(ca.separateRoots(), true);
    const server = ca.activeRoot('server');
    const client = ca.activeRoot('client');
    assert.notEqual(fp(server.cert), fp(client.cert));
    assert.equal(ca.peerRoot('server'), client, 'servers verify clients with the client root');
    assert.equal(ca.peerRoot('client'), server, 'clients verify servers with the server root');
    const keys = new MemoryKeyStore();
    const db = new FleetDb(join(dir, 'manager.db'));
    try {
      for (const [id, role] of [['srv-1', 'server'], ['cli-1', 'client']] as const) {
        const spki = (await keys.create(id, 'P-256')).spki;
        const cert = ca.issueLeaf({ commonName: id, spki, role }, now);
        assert.ok(new X509Certificate(cert).verify(new X509Certificate(ca.issuingRoot(role).cert).publicKey), `${id} is signed by the ${role} root`);
        db.addDevice({ id, role, commonName: id, spki, certificate: cert });
      }
      const orchestrator = buildOrchestrator({ db, authority: ca, transport: new InProcessTransport({ timers: systemTimers }), logger: createLogger({ level: 'error' }), clock: systemClock, verifyAcks: false });
      try {
        await rejectsCode(orchestrator.start({ schedule: SIX_STEP }), 'E_ROOT_SIDE');
        await rejectsCode(ca.prepare({ rotationId: 'x', subjects: [], now }), 'E_ROOT_SIDE');
        assert.equal(db.rotations().length, 0, 'nothing was started');
        const material = await ca.prepare({ rotationId: 'rot-c', subjects: [], now, side: 'client' });
        assert.ok(new X509Certificate(material.distribution).verify(new X509Certificate(client.cert).publicKey), 'Dc is signed by the old client root');
        await ca.activate('rot-c');
        const reopened = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'unused', now });
        assert.equal(fp(reopened.activeRoot('client').cert), fp(material.newRoot), 'the new client root is active after a reopen');
        assert.equal(fp(reopened.activeRoot('server').cert), fp(server.cert), 'the server root is unchanged');
      } finally {
        orchestrator.close();
      }
    } finally {
      db.close();
    }
  });

  it('a single-root CA (as before separate roots) refuses a client-root rotation and keeps one root for both roles', async () => {
    const now = new Date();
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Fleet Root', now });
    assert.equal(ca.separateRoots(), false);
    assert.equal(fp(ca.issuingRoot('client').cert), fp(ca.issuingRoot('server').cert));
    assert.equal(fp(ca.peerRoot('client').cert), fp(ca.activeRoot().cert));
    await rejectsCode(ca.prepare({ rotationId: 'x', subjects: [], now, side: 'client' }), 'E_ROOT_SIDE');
    const db = new FleetDb(join(dir, 'manager.db'));
    const orchestrator = buildOrchestrator({ db, authority: ca, transport: new InProcessTransport({ timers: systemTimers }), logger: createLogger({ level: 'error' }), clock: systemClock, verifyAcks: false });
    try {
      await rejectsCode(orchestrator.start({ schedule: CLIENT_ROOT }), 'E_ROOT_SIDE');
    } finally {
      orchestrator.close();
      db.close();
    }
  });
});
