import { strict as assert } from 'node:assert';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { fixturePerTest, T0, type DeviceFixture, type TestDevice } from '../support/device-fixture.ts';
import { AGENT_BACKENDS } from '../support/agent-backends.ts';
import { forge, KU, subjectOf, datesOf } from '../support/forge.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { createRootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { EKU_CLIENT_AUTH } from '../../protocol/cert-profile.ts';
import type { Ack } from '../../protocol/messages/ack.ts';

const DAY = 86_400_000;

for (const b of AGENT_BACKENDS) describe(`agent on ${b.name}: bad input changes nothing and gets a typed error`, function () {
  this.timeout(60_000);
  let f!: DeviceFixture;
  fixturePerTest(b, (x) => { f = x; });

  /** Send `raw` to `dev`; assert the error code and that the stored bytes and state are unchanged. */
  async function rejects(dev: TestDevice, raw: unknown, code: string, message?: RegExp): Promise<Ack> {
    const fileBefore = (await f.bytes(dev));
    const recordBefore = dev.agent.snapshot();
    const ack = await dev.agent.handle(raw as object);
    assert.equal(ack.ok, false, `expected ${code}, got success`);
    assert.equal(ack.error?.code, code, ack.error?.message);
    if (message) assert.match(ack.error!.message, message);
    assert.equal((await f.bytes(dev)), fileBefore, 'store files are byte-identical');
    assert.deepEqual(dev.agent.snapshot(), recordBefore, 'in-memory record unchanged');
    return ack;
  }

  const k0 = () => f.r0.key;
  const k0pub = () => createPublicKey(f.r0.key);
  const k1pub = () => createPublicKey(f.update.next.key);

  it('forged D: same DN as R0, signed by an attacker key (E_VERIFY_D)', async () => {
    const attacker = await createRoot({ subject: subjectOf(f.r0.cert), algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3000 * DAY) });
    const forged = await createRootUpdate({ old: attacker, now: f.clock.now(), lifetimeDays: 100 });
    await rejects(f.server, f.command(f.server, 1, 'P1', { distribution: forged.distribution }), 'E_VERIFY_D', /not signed by the trusted root/);
  });

  it('D without keyCertSign (E_CA_CONSTRAINTS)', async () => {
    const { notBefore, notAfter } = datesOf(f.update.distribution);
    const d = await forge({ subject: subjectOf(f.update.next.cert), issuer: subjectOf(f.r0.cert), publicKey: k1pub(), signingKey: k0(), signerPublicKey: k0pub(), notBefore, notAfter, ca: true, keyUsage: KU.digitalSignature });
    await rejects(f.server, f.command(f.server, 1, 'P1', { distribution: d }), 'E_CA_CONSTRAINTS', /keyCertSign/);
  });

  it('D with CA:false (E_CA_CONSTRAINTS)', async () => {
    const { notBefore, notAfter } = datesOf(f.update.distribution);
    const d = await forge({ subject: subjectOf(f.update.next.cert), issuer: subjectOf(f.r0.cert), publicKey: k1pub(), signingKey: k0(), signerPublicKey: k0pub(), notBefore, notAfter, ca: false, keyUsage: KU.keyCertSign | KU.cRLSign });
    await rejects(f.client, f.command(f.client, 1, 'P2', { distribution: d }), 'E_CA_CONSTRAINTS');
  });

  it('expired D (E_VALIDITY)', async () => {
    const d = await forge({ subject: subjectOf(f.update.next.cert), issuer: subjectOf(f.r0.cert), publicKey: k1pub(), signingKey: k0(), signerPublicKey: k0pub(), notBefore: T0, notAfter: new Date(T0.getTime() + DAY / 2), ca: true, keyUsage: KU.keyCertSign | KU.cRLSign });
    await rejects(f.server, f.command(f.server, 1, 'P1', { distribution: d }), 'E_VALIDITY', /not at/);
  });

  it('D outliving the old root (E_VALIDITY, RFC 9810)', async () => {
    const d = await forge({ subject: subjectOf(f.update.next.cert), issuer: subjectOf(f.r0.cert), publicKey: k1pub(), signingKey: k0(), signerPublicKey: k0pub(), notBefore: f.clock.now(), notAfter: new Date(T0.getTime() + 4000 * DAY), ca: true, keyUsage: KU.keyCertSign | KU.cRLSign });
    await rejects(f.server, f.command(f.server, 1, 'P1', { distribution: d }), 'E_VALIDITY', /RFC 9810/);
  });

  it('R1 whose key differs from D\'s (E_VERIFY_R1)', async () => {
    const other = await createRootUpdate({ old: f.r0, now: f.clock.now(), lifetimeDays: 3650 });
    await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }));
    await f.server.agent.handle(f.command(f.server, 2, 'P4', { certificate: f.sn }));
    await rejects(f.server, f.command(f.server, 3, 'P5', { newRoot: other.next.cert }), 'E_VERIFY_R1', /different public key/);
  });

  it('leaf for a key that is not the device\'s (E_LEAF_KEY_MISMATCH)', async () => {
    await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }));
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const leaf = new LeafIssuer(f.update.next).issue({ commonName: 'srv-1', publicKey: stranger, profile: 'server', notBefore: f.clock.now(), notAfter: new Date(f.clock.now().getTime() + DAY * 30) });
    await rejects(f.server, f.command(f.server, 2, 'P4', { certificate: leaf }), 'E_LEAF_KEY_MISMATCH');
  });

  it('leaf signed by a key other than K1 (E_VERIFY_LEAF)', async () => {
    await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }));
    const oldLeaf = f.server.agent.identities()[0]!.cert;
    await rejects(f.server, f.command(f.server, 2, 'P4', { certificate: oldLeaf }), 'E_VERIFY_LEAF', /not issued by the new root key/);
  });

  it('client certificate without clientAuth (E_VERIFY_LEAF)', async () => {
    await f.client.agent.handle(f.command(f.client, 1, 'P2', { distribution: f.update.distribution }));
    const spki = (await f.client.keys.get(f.client.keyLabel))!.spki;
    const serverProfile = new LeafIssuer(f.update.next).issue({ commonName: 'cli-1', publicKey: spki, profile: 'server', notBefore: f.clock.now(), notAfter: new Date(f.clock.now().getTime() + DAY * 30) });
    assert.ok(!serverProfile.includes(EKU_CLIENT_AUTH));
    await rejects(f.client, f.command(f.client, 2, 'P3', { certificate: serverProfile }), 'E_VERIFY_LEAF', /clientAuth/);
  });

  it('P5 and P6 before their prerequisites (E_OUT_OF_ORDER)', async () => {
    await rejects(f.server, f.command(f.server, 1, 'P5', { newRoot: f.update.next.cert }), 'E_OUT_OF_ORDER', /next allowed is P1/);
    await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }));
    await rejects(f.server, f.command(f.server, 2, 'P5', { newRoot: f.update.next.cert }), 'E_OUT_OF_ORDER', /current step is P1, next allowed is P4/);
    await f.client.agent.handle(f.command(f.client, 1, 'P2', { distribution: f.update.distribution }));
    await rejects(f.client, f.command(f.client, 2, 'P6', { newRoot: f.update.next.cert }), 'E_OUT_OF_ORDER');
  });

  it('a step for the other role (E_WRONG_ROLE) and for another device (E_WRONG_DEVICE)', async () => {
    await rejects(f.client, f.command(f.client, 1, 'P1', { distribution: f.update.distribution }), 'E_WRONG_ROLE');
    await rejects(f.client, { ...f.command(f.client, 1, 'P2', { distribution: f.update.distribution }), deviceId: 'cli-2' }, 'E_WRONG_DEVICE');
  });

  it('a replayed command of an older rotation (E_REPLAY), and a reused sequence number (E_REPLAY)', async () => {
    const s = f.server;
    const p1 = f.command(s, 1, 'P1', { distribution: f.update.distribution });
    await s.agent.handle(p1);
    await s.agent.handle(f.command(s, 2, 'P4', { certificate: f.sn }));
    await s.agent.handle(f.command(s, 3, 'P5', { newRoot: f.update.next.cert }));
    // A second rotation starts; the first one's P1 is replayed through the broker.
    f.clock.advance(DAY);
    const update2 = await createRootUpdate({ old: f.update.next, now: f.clock.now(), lifetimeDays: 3650 });
    assert.equal((await s.agent.handle(f.command(s, 4, 'P1', { distribution: update2.distribution }, { rotationId: 'rot-2' }))).ok, true);
    await rejects(s, p1, 'E_REPLAY', /rotation rot-1/);
    await rejects(s, f.command(s, 4, 'P4', { certificate: f.sn }, { rotationId: 'rot-2' }), 'E_REPLAY', /sequence 4/);
  });

  it('a new rotation while one is still open (E_ROTATION_IN_PROGRESS)', async () => {
    await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }));
    await rejects(f.server, f.command(f.server, 2, 'P1', { distribution: f.update.distribution }, { rotationId: 'rot-9' }), 'E_ROTATION_IN_PROGRESS');
  });

  it('malformed PEM (E_SCHEMA for the wrong shape, E_PEM for garbage inside a PEM block)', async () => {
    await rejects(f.server, f.command(f.server, 1, 'P1', { distribution: 'not a certificate at all, just text that is long enough to pass' }), 'E_SCHEMA');
    const garbage = `-----BEGIN CERTIFICATE-----\n${Buffer.alloc(300, 7).toString('base64')}\n-----END CERTIFICATE-----\n`;
    await rejects(f.server, f.command(f.server, 1, 'P1', { distribution: garbage }), 'E_PEM', /not a valid X.509/);
    const two = f.update.distribution + f.update.distribution;
    await rejects(f.server, f.command(f.server, 1, 'P1', { distribution: two }), 'E_PEM', /exactly one/);
  });

  it('oversized payload (E_PAYLOAD_TOO_LARGE) and non-JSON (E_SCHEMA)', async () => {
    const big = JSON.stringify(f.command(f.server, 1, 'P1', { distribution: f.update.distribution + ' '.repeat(70_000) }));
    await rejects(f.server, big, 'E_PAYLOAD_TOO_LARGE');
    await rejects(f.server, '{"v":1,', 'E_SCHEMA', /not valid JSON/);
  });

  it('the unsafe naive schedule is refused by a device by default, even when well-formed (E_SCHEMA)', async () => {
    const naive = { ...f.command(f.server, 1, 'NS', { distribution: f.update.distribution, newRoot: f.update.next.cert, certificate: f.sn }), schedule: 'naive' };
    await rejects(f.server, naive, 'E_SCHEMA', /unknown schedule "naive"/);
  });

  it('schema violations (E_SCHEMA)', async () => {
    const good = f.command(f.server, 1, 'P1', { distribution: f.update.distribution });
    const { seq: _seq, ...noSeq } = good;
    for (const bad of [
      noSeq,
      { ...good, extra: 1 },
      { ...good, v: 2 },
      { ...good, seq: '1' },
      { ...good, seq: -1 },
      { ...good, step: 'P9' },
      { ...good, schedule: 'made-up' },
      { ...good, payload: { certificate: f.sn } },
      { ...good, payload: { distribution: f.update.distribution, certificate: f.sn } },
      { ...good, deviceId: '../../etc' },
      [good],
      null,
    ]) {
      await rejects(f.server, JSON.stringify(bad), 'E_SCHEMA');
    }
  });
});
