import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { InProcessFleet } from '../../demo/in-process-fleet.ts';
import { acceptRekey, enrollFromCsr } from '../../manager/pki/enrollment.ts';
import { ManagerError } from '../../manager/errors.ts';
import { buildCsr } from '../../protocol/csr.ts';
import { SIX_STEP } from '../../protocol/steps.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';
import { spkiOf } from '../../protocol/pem.ts';

describe('manager: enrollment and re-key through CSRs', function () {
  this.timeout(60_000);
  let fleet: InProcessFleet;
  afterEach(async () => { await fleet?.close(); });

  it('a rotation issues the re-keyed device its new certificate for the key made in its HAL', async () => {
    fleet = await InProcessFleet.create({ servers: 2, clients: 3 });
    const agent = fleet.agents.get('srv-2')!;
    const csr = await agent.rekey();
    acceptRekey(fleet.db, { deviceId: 'srv-2', csrPem: csr });
    const pending = agent.snapshot().pendingKey!;
    const rotation = await fleet.rotate(SIX_STEP);
    assert.equal(rotation.status, 'complete');
    const id = agent.identities()[0]!;
    assert.equal(id.keyLabel, pending, 'srv-2 now presents a certificate for its new key');
    const newSpki = (await fleet.keys.get('srv-2')!.get(pending))!.spki;
    assert.ok(spkiOf(new X509Certificate(id.cert)).equals(newSpki));
    assert.equal(fleet.agents.get('srv-1')!.identities()[0]!.keyLabel, 'device', 'devices that did not re-key keep their key');
  });

  it('refuses a CSR for another device, a forged CSR, and a re-key while a rotation runs', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 1 });
    const csr = await fleet.agents.get('srv-1')!.rekey();
    assert.throws(() => acceptRekey(fleet.db, { deviceId: 'cli-1', csrPem: csr }), (e: unknown) => e instanceof ManagerError && e.code === 'E_CSR_IDENTITY');
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der.writeUInt8(der.readUInt8(der.length - 1) ^ 0x01, der.length - 1);
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.notEqual(tampered, csr);
    assert.throws(() => acceptRekey(fleet.db, { deviceId: 'srv-1', csrPem: tampered }), /E_CSR_(SIGNATURE|MALFORMED)/);
    const before = fleet.db.device('srv-1').spki;
    fleet.disconnect('cli-1');
    await fleet.orchestrator.start({ schedule: SIX_STEP });
    assert.throws(() => acceptRekey(fleet.db, { deviceId: 'srv-1', csrPem: csr }), (e: unknown) => e instanceof ManagerError && e.code === 'E_ROTATION_ACTIVE');
    assert.ok(fleet.db.device('srv-1').spki.equals(before), 'nothing changed');
  });

  it('enrolls a device from its CSR with a certificate from the active root', async () => {
    fleet = await InProcessFleet.create({ servers: 1, clients: 1 });
    const keys = new MemoryKeyStore();
    const key = await keys.create('device', 'P-256');
    const csr = await buildCsr({ commonName: 'printer-77', spki: key.spki, algorithm: 'P-256', sign: (d) => keys.sign('device', d) });
    const cert = new X509Certificate(enrollFromCsr(fleet.db, fleet.ca, { deviceId: 'printer-77', role: 'server', csrPem: csr, now: new Date() }));
    assert.ok(cert.verify(new X509Certificate(fleet.ca.activeRoot().cert).publicKey));
    assert.ok(spkiOf(cert).equals(key.spki));
    assert.equal(fleet.db.device('printer-77').role, 'server');
    assert.throws(() => enrollFromCsr(fleet.db, fleet.ca, { deviceId: 'printer-78', role: 'server', csrPem: csr, now: new Date() }), /E_CSR_IDENTITY/);
  });
});
