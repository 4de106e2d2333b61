import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { EmbeddedBroker } from '../../manager/broker/embedded-broker.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { embeddedBrokerControl } from '../../manager/link-rotation/broker-control.ts';
import { recordLinkCertificate } from '../../manager/link-rotation/link-material.ts';
import { brokerFilesNow } from '../../manager/link-rotation/broker-files.ts';
import { rotateManagementRoot } from '../../manager/link-rotation/link-rotation.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { createLogger } from '../../protocol/log.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { startDevice, stopAll, type DeviceProc } from '../../demo/device-process.ts';
import { fleetShape, provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

describe('mqtt: management-root rotation on the embedded broker (TLS material swapped, no restart)', function () {
  this.timeout(90_000);
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', sink: (l) => lines.push(l) });
  let dir = '';
  let broker: EmbeddedBroker | null = null;
  let db: FleetDb | null = null;
  let procs: DeviceProc[] = [];

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.error(lines.slice(-40).join('\n'));
    await stopAll(procs).catch(() => undefined);
    procs = [];
    db?.close();
    await broker?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('completes with no refused handshake at the broker, every device under the new root only, 0 failed device-PKI handshakes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-linkemb-'));
    const mgmt = join(dir, 'mgmt');
    const pki = await ManagementPki.create({ now: new Date() });
    pki.save(mgmt);
    broker = await EmbeddedBroker.start({ ...brokerFilesNow(mgmt), logger, sysIntervalMs: 0 });
    mkdirSync(join(dir, 'manager'));
    const ca = await CaAuthority.openOrInit(join(dir, 'manager', 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll test', now: new Date() });
    db = new FleetDb(join(dir, 'manager', 'manager.db'));
    const ids = fleetShape(1, 1);
    const ports = await serverPorts(ids);
    for (const [id, role] of ids) {
      const config = await provisionDevice(dir, id, role, { pki, ca, db, brokerUrl: broker.url, ports, naive: false, logger });
      recordLinkCertificate(mgmt, id, pki.device(id).cert);
      const p = startDevice(id, role, join(dir, 'devices', id), config);
      procs.push(p);
      await p.ready;
    }
    const result = await rotateManagementRoot({ mgmtDir: mgmt, db, brokerUrl: broker.url, logger, broker: embeddedBrokerControl(broker), ackTimeoutMs: 8_000 });
    assert.equal(result.resent, 0);
    assert.equal(result.acks, 2 * ids.length);
    assert.equal(broker.stats.refusedConnects, 0, 'no device or manager ever presented a certificate the broker did not trust, nor was refused one it could not verify');
    const newRoot = readFileSync(join(mgmt, 'ca.pem'), 'utf8');
    assert.deepEqual(brokerFilesNow(mgmt).ca.match(PEM)!.map(fingerprintPem), [fingerprintPem(newRoot)], 'a broker started now serves the new material');
    for (const [id] of ids) {
      const linkDir = join(dir, 'devices', id, 'link');
      assert.deepEqual(readFileSync(join(linkDir, 'link-ca.pem'), 'utf8').match(PEM)!.map(fingerprintPem), [fingerprintPem(newRoot)], `${id}: trusts only R1`);
      assert.ok(new X509Certificate(readFileSync(join(linkDir, 'link-cert.pem'), 'utf8')).verify(new X509Certificate(newRoot).publicKey), `${id}: link certificate under R1`);
    }
    const tallies = await stopAll(procs);
    procs = [];
    assert.equal(tallies.length, 1);
    assert.ok(tallies[0]!.attempted > 10);
    assert.equal(tallies[0]!.failed, 0, tallies[0]!.failures.join('\n'));
    console.log(`      embedded: ${result.seconds.toFixed(1)} s, ${result.commands} commands, ${result.acks} acks, handshakes ${tallies[0]!.attempted}, failed 0`);
  });
});
