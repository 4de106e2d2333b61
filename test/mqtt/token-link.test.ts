import { strict as assert } from 'node:assert';
import net from 'node:net';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { DeviceLink } from '../../agent/mqtt-link.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';
import { Mosquitto } from '../../demo/mosquitto.ts';
import { StunnelTerminator } from '../../hal/tls/stunnel.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { createRootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { MqttManagerTransport } from '../../manager/transport/mqtt-transport.ts';
import { systemClock } from '../../protocol/clock.ts';
import { commandSigner, commandVerifier } from '../../protocol/command-signature.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import { tokenSuite } from '../support/token-suite.ts';

const DAY = 86_400_000;

describe('MQTT link with the management key inside a PKCS#11 token (SoftHSM2, stunnel terminator, Mosquitto)', function () {
  this.timeout(60_000);
  const suite = tokenSuite('mgmt-token');
  const closers = suite.closers;

  it('connects through the terminator, receives a signed command and acknowledges it', async () => {
    const logger = createLogger({ level: 'error' });
    const pki = await ManagementPki.create({ now: new Date() });
    const mgmtKey = await suite.token().create('cli-9.mgmt', 'P-256');
    const linkCert = pki.deviceCertificate('cli-9', mgmtKey.spki);
    const broker = await Mosquitto.start(pki);
    closers.push(() => broker.close());
    const ref = await suite.token().tlsKey!('cli-9.mgmt');
    assert.equal(ref.kind, 'pkcs11');
    const term = await StunnelTerminator.start(ref as Extract<typeof ref, { kind: 'pkcs11' }>, { host: '127.0.0.1', port: broker.port, servername: 'localhost', certPem: linkCert, caPem: pki.ca });
    closers.push(() => term.close());

    const start = new Date(Date.now() - 3_600_000);
    const r0 = await createRoot({ subject: 'CN=Link Test Root', algorithm: 'P-256', notBefore: start, notAfter: new Date(start.getTime() + 3650 * DAY) });
    const keys = new MemoryKeyStore();
    const spki = (await keys.create('device', 'P-256')).spki;
    const store = new SqliteStateStore(join(suite.dir(), 'cli-9.db'));
    closers.push(() => store.close());
    const agent = await Agent.provision(
      { deviceId: 'cli-9', role: 'client', store, keys, clock: systemClock, logger, verifySignature: commandVerifier(pki.trustedCommandKeys()) },
      { root: r0.cert, certificate: new LeafIssuer(r0).issue({ commonName: 'cli-9', publicKey: spki, profile: 'client', notBefore: start, notAfter: new Date(Date.now() + DAY) }), keyLabel: 'device' },
    );
    const link = new DeviceLink({ url: broker.url, agent, tls: { ca: pki.ca, cert: linkCert }, stream: () => net.connect(term.socketPath), clock: systemClock, logger, backoff: { initialMs: 50, maxMs: 200 } });
    closers.push(() => link.close());
    await link.ready(15_000);

    const transport = new MqttManagerTransport({ url: broker.url, tls: { ca: pki.ca, ...pki.manager }, logger });
    closers.push(() => transport.close());
    const acks: Ack[] = [];
    transport.onAck((raw) => acks.push((typeof raw === 'object' && !Buffer.isBuffer(raw) ? raw : JSON.parse(String(raw))) as Ack));
    await transport.ready(15_000);
    const update = await createRootUpdate({ old: r0, now: new Date(Date.now() - 60_000), lifetimeDays: 3650 });
    const cmd = commandSigner(pki.commandKey)({ v: 1, kind: 'command', deviceId: 'cli-9', rotationId: 'rot-link', schedule: 'six-step', seq: 1, step: 'P2', issuedAt: new Date().toISOString(), payload: { distribution: update.distribution } });
    transport.send(cmd);
    const end = Date.now() + 15_000;
    while (acks.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(acks[0]?.ok, true, JSON.stringify({ error: acks[0]?.error, transport: transport.stats }));
    assert.equal(acks[0]?.seq, 1);
    assert.ok(term.running, 'one terminator served the whole session');
  });
});
