import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { fingerprint } from '../../protocol/pem.ts';
import { SeparateRootsFleet, type SideRun } from '../support/separate-roots-fleet.ts';
import { assertAuditClean } from '../support/audit.ts';

const fp = (pem: string) => fingerprint(new X509Certificate(pem));

describe('separate client and server roots in a mixed relay topology: device processes over Mosquitto, continuous mutual TLS, OpenSSL and GnuTLS at every step boundary', function () {
  this.timeout(300_000);
  let fleet: SeparateRootsFleet;
  const runs: Partial<Record<'client' | 'server', SideRun>> = {};
  const servers = ['printer-1', 'printer-2'];
  const clients = ['mgmt-client-1', 'mgmt-client-2', 'mgmt-client-3'];
  let initial: Map<string, string>;

  before(async () => {
    // Mixed topology: mgmt-client-1 polls printer-1, printer-2 is pushed to by mgmt-client-2, the rest direct.
    fleet = await SeparateRootsFleet.start({ servers: 2, clients: 3, paceMs: 150, topology: 'mixed' });
    initial = new Map(fleet.db.devices().map((d) => [d.id, fp(d.certificate)]));
    assert.deepEqual(Object.fromEntries(fleet.db.routes()), { 'mgmt-client-1': 'printer-1', 'printer-2': 'mgmt-client-2' }, 'two devices reach the manager only through a relay');
  });
  after(async () => {
    const audit = fleet?.verifyAudit();
    const tallies = await fleet?.close();
    if (audit) {
      assertAuditClean(audit);
      assert.equal(audit.rotations, 2, 'both rotations re-checked from the audit log');
      assert.equal(audit.sendsChecked, (2 * servers.length + 3 * clients.length) + (3 * servers.length + 2 * clients.length), 'every step of both schedules was sent once and checked');
    }
    const report = Object.entries(runs).map(([side, r]) => `${side} root: ${r!.ms} ms, ${r!.handshakes.attempted} handshakes (${r!.handshakes.failed} failed, ${r!.handshakes.fallbacks} fallbacks), cross-stack ${r!.cross.openssl.attempted}+${r!.cross.gnutls.attempted}`);
    if (report.length) console.log(`      ${report.join('\n      ')}`);
    if (tallies) assert.equal(tallies.reduce((n, t) => n + t.failed, 0), 0, tallies.flatMap((t) => t.failures).slice(0, 5).join('\n'));
  });

  const checkClean = (r: SideRun, steps: number) => {
    assert.equal(r.rotation.status, 'complete', r.rotation.error ?? '');
    assert.ok(r.handshakes.attempted >= 100, `${r.handshakes.attempted} mutual-TLS handshakes during the rotation`);
    assert.equal(r.handshakes.failed, 0, 'no failed handshake');
    assert.equal(r.boundaries.length, steps + 1, `before and after every step: ${r.boundaries.join(', ')}`);
    for (const stack of ['openssl', 'gnutls'] as const) {
      assert.ok(r.cross[stack].attempted >= servers.length * clients.length * r.boundaries.length, `${stack}: every pair at every boundary (${r.cross[stack].attempted})`);
      assert.equal(r.cross[stack].failed, 0, r.cross.failures.join('\n'));
    }
  };

  it('rotating the client root: 0 failed handshakes, servers end trusting only the new client root, no server certificate changes', async () => {
    const oldClientRoot = fp(fleet.ca.activeRoot('client').cert);
    const serverRoot = fp(fleet.ca.activeRoot('server').cert);
    // One client is slow (frozen for 2.5 s): no server may drop the old client root before it presents Cn.
    fleet.freeze('mgmt-client-3', true);
    setTimeout(() => fleet.freeze('mgmt-client-3', false), 2500);
    const r = runs.client = await fleet.rotate('client', 300);
    checkClean(r, 5);
    const newClientRoot = fp(fleet.ca.activeRoot('client').cert);
    assert.notEqual(newClientRoot, oldClientRoot, 'the CA activated the new client root');
    assert.equal(fp(fleet.ca.activeRoot('server').cert), serverRoot, 'the server root is untouched');
    for (const s of servers) {
      assert.deepEqual(r.presented.get(s), [initial.get(s)], `${s} presented its one original certificate at every boundary`);
      assert.equal(fp(fleet.db.device(s).certificate), initial.get(s), `${s}: the manager issued it nothing`);
      assert.deepEqual(r.anchorsAfter.get(s), [newClientRoot], `${s} verifies clients with the new client root only`);
    }
    for (const c of clients) {
      const now = fleet.db.device(c).certificate;
      assert.notEqual(fp(now), initial.get(c), `${c} got Cn`);
      assert.ok(new X509Certificate(now).verify(new X509Certificate(fleet.ca.activeRoot('client').cert).publicKey), `${c}'s Cn is signed by the new client root`);
      assert.deepEqual(r.presented.get(c), [initial.get(c), fp(now)], `${c}: old certificate, then Cn first with the old as fallback, then Cn alone`);
      assert.deepEqual(r.anchorsAfter.get(c), [serverRoot], `${c} still verifies servers with the server root only`);
    }
  });

  it('then rotating the server root: 0 failed handshakes, clients end trusting only the new server root, no client certificate changes', async () => {
    assert.ok(runs.client, 'the client-root rotation ran first');
    const clientCerts = new Map(clients.map((c) => [c, fp(fleet.db.device(c).certificate)]));
    const oldServerRoot = fp(fleet.ca.activeRoot('server').cert);
    const clientRoot = fp(fleet.ca.activeRoot('client').cert);
    // One client is slow (frozen for 2.5 s): no server may switch to Sn before it trusts the new server key.
    fleet.freeze('mgmt-client-3', true);
    setTimeout(() => fleet.freeze('mgmt-client-3', false), 2500);
    const r = runs.server = await fleet.rotate('server', 300);
    checkClean(r, 5);
    const newServerRoot = fp(fleet.ca.activeRoot('server').cert);
    assert.notEqual(newServerRoot, oldServerRoot);
    assert.equal(fp(fleet.ca.activeRoot('client').cert), clientRoot, 'the client root is untouched');
    for (const c of clients) {
      assert.deepEqual(r.presented.get(c), [clientCerts.get(c)], `${c} presented the same one certificate at every boundary`);
      assert.equal(fp(fleet.db.device(c).certificate), clientCerts.get(c), `${c}: the manager issued it nothing`);
      assert.deepEqual(r.anchorsAfter.get(c), [newServerRoot], `${c} verifies servers with the new server root only`);
    }
    for (const s of servers) {
      const now = fleet.db.device(s).certificate;
      assert.deepEqual(r.presented.get(s), [initial.get(s), fp(now)], `${s} switched once, to Sn`);
      assert.ok(new X509Certificate(now).verify(new X509Certificate(fleet.ca.activeRoot('server').cert).publicKey), `${s}'s Sn is signed by the new server root`);
      assert.deepEqual(r.anchorsAfter.get(s), [clientRoot], `${s} still verifies clients with the (new) client root`);
    }
  });
});
