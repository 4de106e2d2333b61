import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { DeviceTlsConnector } from '../../agent/tls/device-tls-connector.ts';
import { DeviceTokenTlsServer } from '../../agent/tls/device-token-tls-server.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';
import type { KeyStore } from '../../hal/key-store.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { createRootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Role } from '../../protocol/steps.ts';
import { tokenSuite } from '../support/token-suite.ts';

const DAY = 86_400_000;

describe('device mTLS service with the key inside a PKCS#11 token (SoftHSM2, stunnel terminator)', function () {
  this.timeout(120_000);
  const suite = tokenSuite('printer-token');
  const closers = suite.closers;

  it('serves clients, reloads D and Sn without dropping an established connection, and never exports the key', async () => {
    const logger = createLogger({ level: 'error' });
    const start = new Date(Date.now() - 3_600_000);
    const r0 = await createRoot({ subject: 'CN=Token Fleet Root', algorithm: 'P-256', notBefore: start, notAfter: new Date(start.getTime() + 3650 * DAY) });
    const update = await createRootUpdate({ old: r0, now: new Date(Date.now() - 60_000), lifetimeDays: 3650 });
    const leaf = (issuer: typeof r0, id: string, spki: Buffer, role: Role, from = start) =>
      new LeafIssuer(issuer).issue({ commonName: id, publicKey: spki, profile: role, notBefore: from, notAfter: new Date(Date.now() + 30 * DAY) });
    const provision = async (id: string, role: Role, keys: KeyStore, label: string) => {
      const spki = (await keys.get(label) ?? await keys.create(label, 'P-256')).spki;
      const store = new SqliteStateStore(join(suite.dir(), `${id}.db`));
      closers.push(() => store.close());
      const agent = await Agent.provision({ deviceId: id, role, store, keys, clock: systemClock, logger }, { root: r0.cert, certificate: leaf(r0, id, spki, role), keyLabel: label });
      return { agent, spki };
    };
    const printer = await provision('printer-1', 'server', suite.token(), 'printer-1.key');
    const ref = await suite.token().tlsKey!('printer-1.key');
    assert.equal(ref.kind, 'pkcs11', 'the TLS key is a token reference, not key bytes');
    const clientKeys = new MemoryKeyStore();
    const client = await provision('console-1', 'client', clientKeys, 'device');
    const server = await DeviceTokenTlsServer.start({ agent: printer.agent, keys: suite.token(), logger });
    closers.push(() => server.close());
    const connector = await DeviceTlsConnector.create({ agent: client.agent, keys: clientKeys, logger });
    closers.push(() => connector.close());
    const target = { host: '127.0.0.1', port: server.port, serverId: 'printer-1' };

    const first = await connector.check(target);
    assert.equal(first.ok, true, JSON.stringify(first.error));

    // A client from another fleet is refused by the terminator.
    const stranger = new MemoryKeyStore();
    const otherRoot = await createRoot({ subject: 'CN=Other Root', algorithm: 'P-256', notBefore: start, notAfter: new Date(start.getTime() + 3650 * DAY) });
    const strangerSpki = (await stranger.create('device', 'P-256')).spki;
    const strangerStore = new SqliteStateStore(join(suite.dir(), 'stranger.db'));
    closers.push(() => strangerStore.close());
    const strangerAgent = await Agent.provision({ deviceId: 'stranger', role: 'client', store: strangerStore, keys: stranger, clock: systemClock, logger },
      { root: r0.cert, certificate: leaf(otherRoot, 'stranger', strangerSpki, 'client'), keyLabel: 'device' }).catch(() => null);
    assert.equal(strangerAgent, null, 'provisioning refuses a certificate from another root');

    // An established connection, then the server's trust store and certificate change twice.
    const held = await connector.open(target);

    assert.ok(held.socket, JSON.stringify(held.result.error));
    const cmd = (id: string, seq: number, step: string, payload: object) => ({ v: 1, kind: 'command', deviceId: id, rotationId: 'rot-t', schedule: 'six-step', seq, step, issuedAt: new Date().toISOString(), payload });
    assert.equal((await client.agent.handle(cmd('console-1', 1, 'P2', { distribution: update.distribution }))).ok, true);
    assert.equal((await printer.agent.handle(cmd('printer-1', 1, 'P1', { distribution: update.distribution }))).ok, true);
    const sn = leaf(update.next, 'printer-1', printer.spki, 'server', new Date(Date.now() - 60_000));
    const p4 = await printer.agent.handle(cmd('printer-1', 2, 'P4', { certificate: sn }));
    assert.equal(p4.ok, true, JSON.stringify(p4.error));
    assert.equal(server.stats().reloads, 2, 'one reload per durable change');

    const echoed = await new Promise<string>((resolve, reject) => {
      let buf = '';
      held.socket!.on('data', (d: Buffer) => { buf += d.toString(); if (buf.includes('echo still-here')) resolve(buf); });
      held.socket!.once('close', () => reject(new Error('the established connection was dropped by the reload')));
      held.socket!.resume();
      held.socket!.write('still-here\n');
    });
    assert.match(echoed, /echo still-here/);
    held.socket!.destroy();

    const after = await connector.check(target);
    assert.equal(after.ok, true, JSON.stringify(after.error));
    assert.ok(server.stats().accepted >= 3);
  });
});
