import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturePerTest, refused, T0, type DeviceFixture, type TestDevice } from '../support/device-fixture.ts';
import { AGENT_BACKENDS } from '../support/agent-backends.ts';
import { subjectOf } from '../support/forge.ts';
import { createRoot, type RootMaterial } from '../../manager/ca/root.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { StepPayload } from '../../protocol/messages/command.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import type { Role } from '../../protocol/steps.ts';

const DAY = 86_400_000;

for (const b of AGENT_BACKENDS) describe(`agent on ${b.name}: renewal of the device certificate under the current root (renew-cert)`, function () {
  this.timeout(60_000);
  let f!: DeviceFixture;
  fixturePerTest(b, (x) => { f = x; });

  const spkiOf = async (dev: TestDevice, label = dev.keyLabel) => (await dev.keys.get(label))!.spki;
  /** A leaf for the device's own key (or `spki`) under `root`, valid from `from` for `days` (the fixture's leaves end at T0 + 700 days). */
  const leaf = async (dev: TestDevice, root: RootMaterial, o: { spki?: Buffer; profile?: Role; from?: Date; days?: number } = {}) => {
    const from = o.from ?? f.clock.now();
    return new LeafIssuer(root).issue({ commonName: dev.id, publicKey: o.spki ?? (await spkiOf(dev)), profile: o.profile ?? dev.role, notBefore: from, notAfter: new Date(from.getTime() + (o.days ?? 730) * DAY) });
  };
  const renew = (dev: TestDevice, seq: number, payload: StepPayload, rotationId = 'renew-1') =>
    f.command(dev, seq, dev.role === 'server' ? 'RS' : 'RC', payload, { schedule: 'renew', rotationId });

  const rejects = (dev: TestDevice, raw: object, code: string, message?: RegExp): Promise<Ack> => refused(f, dev, raw, code, message);

  /** The device trusts exactly `root` and presents exactly `cert`; OpenSSL agrees that it verifies under the stored root for the role. */
  function assertRenewed(dev: TestDevice, root: string, cert: string, rotationId = 'renew-1'): void {
    const r = dev.agent.snapshot();
    assert.deepEqual(r.trust, { current: root, distribution: null, next: null }, 'the trust store is untouched');
    assert.deepEqual(r.identity, { active: { cert, keyLabel: r.identity.active.keyLabel }, fallback: null }, 'only the renewed certificate is presented');
    assert.deepEqual(r.rotation, { id: rotationId, schedule: 'renew', completed: [dev.role === 'server' ? 'RS' : 'RC'] });
    writeFileSync(join(f.dir, `${dev.id}-root.pem`), dev.agent.trustAnchors().join(''));
    writeFileSync(join(f.dir, `${dev.id}-leaf.pem`), dev.agent.identities()[0]!.cert);
    const out = execFileSync('openssl', ['verify', '-no-CApath', '-no-CAstore', '-CAfile', join(f.dir, `${dev.id}-root.pem`), '-purpose', dev.role === 'server' ? 'sslserver' : 'sslclient',
      '-attime', String(Math.floor(f.clock.now().getTime() / 1000)), join(f.dir, `${dev.id}-leaf.pem`)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(out, /: OK/);
  }

  it('a server and a client renew under R0: the one certificate is replaced, durably; a redelivery writes nothing', async () => {
    const sn = await leaf(f.server, f.r0);
    const s = await f.server.agent.handle(renew(f.server, 1, { certificate: sn }));
    assert.equal(s.ok, true, JSON.stringify(s.error));
    assert.equal(s.state.identity.active, fingerprintPem(sn));
    assert.equal(s.state.trust.current, fingerprintPem(f.r0.cert));
    assertRenewed(f.server, f.r0.cert, sn);

    const cn = await leaf(f.client, f.r0);
    const cmd = renew(f.client, 1, { certificate: cn });
    const c = await f.client.agent.handle(JSON.stringify(cmd));
    assert.equal(c.ok, true, JSON.stringify(c.error));
    assertRenewed(f.client, f.r0.cert, cn);
    f.client = await f.reopen(f.client);
    assertRenewed(f.client, f.r0.cert, cn);
    const bytes = await f.bytes(f.client);
    assert.deepEqual(await f.client.agent.handle(JSON.stringify(cmd)), c, 'a redelivery gets the stored acknowledgement');
    assert.equal(await f.bytes(f.client), bytes, 'and writes nothing');
    const history = await f.client.store.history(10);
    assert.deepEqual(history.map((h) => h.step), ['RC']);
  });

  it('a renewal is a closed rotation: the next renewal and the next root rotation start on the device', async () => {
    const first = await leaf(f.client, f.r0);
    assert.equal((await f.client.agent.handle(renew(f.client, 1, { certificate: first }))).ok, true);
    f.clock.advance(30 * DAY);
    const second = await leaf(f.client, f.r0);
    const again = await f.client.agent.handle(renew(f.client, 2, { certificate: second }, 'renew-2'));
    assert.equal(again.ok, true, JSON.stringify(again.error));
    assertRenewed(f.client, f.r0.cert, second, 'renew-2');
    // The same renewal cannot be applied twice under a new sequence number.
    await rejects(f.client, renew(f.client, 3, { certificate: second }, 'renew-2'), 'E_OUT_OF_ORDER', /rotation complete/);
    const p2 = await f.client.agent.handle(f.command(f.client, 3, 'P2', { distribution: f.update.distribution }, { rotationId: 'rot-2' }));
    assert.equal(p2.ok, true, JSON.stringify(p2.error));
  });

  it('after a root rotation the renewal verifies under R1 only; a certificate from R0 (the old root) is refused', async () => {
    const { server, client, update } = f;
    for (const [dev, steps] of [[server, [['P1', { distribution: update.distribution }], ['P4', { certificate: f.sn }], ['P5', { newRoot: update.next.cert }]]],
      [client, [['P2', { distribution: update.distribution }], ['P3', { certificate: f.cn }], ['P6', { newRoot: update.next.cert }]]]] as const) {
      let seq = 1;
      for (const [step, payload] of steps) assert.equal((await dev.agent.handle(f.command(dev, seq++, step, payload as StepPayload))).ok, true, step);
    }
    f.clock.advance(DAY);
    await rejects(server, renew(server, 4, { certificate: await leaf(server, f.r0) }), 'E_VERIFY_LEAF', /not issued by the root this device trusts now/);
    const sn = await leaf(server, update.next);
    const ack = await server.agent.handle(renew(server, 4, { certificate: sn }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assertRenewed(server, update.next.cert, sn);
  });

  it('refuses while a root rotation is open on the device (E_ROTATION_IN_PROGRESS), and a leaf under D or R1 of that rotation, changing nothing', async () => {
    assert.equal((await f.client.agent.handle(f.command(f.client, 1, 'P2', { distribution: f.update.distribution }))).ok, true);
    await rejects(f.client, renew(f.client, 2, { certificate: await leaf(f.client, f.r0) }), 'E_ROTATION_IN_PROGRESS', /rot-1 is still open/);
    // A leaf signed by the new root key does not pass for a renewal on a device that still trusts R0 only.
    await rejects(f.server, renew(f.server, 1, { certificate: await leaf(f.server, f.update.next) }), 'E_VERIFY_LEAF', /not issued by the root this device trusts now/);
  });

  it('refuses a certificate from another root with the same name, for another key, or for the other role, changing nothing', async () => {
    const attacker = await createRoot({ subject: subjectOf(f.r0.cert), algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3650 * DAY) });
    await rejects(f.server, renew(f.server, 1, { certificate: await leaf(f.server, attacker) }), 'E_VERIFY_LEAF', /not issued by the root this device trusts now/);
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    await rejects(f.server, renew(f.server, 1, { certificate: await leaf(f.server, f.r0, { spki: stranger }) }), 'E_LEAF_KEY_MISMATCH', /another key/);
    await rejects(f.client, renew(f.client, 1, { certificate: await leaf(f.client, f.r0, { spki: await spkiOf(f.server) }) }), 'E_LEAF_KEY_MISMATCH');
    await rejects(f.client, renew(f.client, 1, { certificate: await leaf(f.client, f.r0, { profile: 'server' }) }), 'E_VERIFY_LEAF', /clientAuth/);
    await rejects(f.server, renew(f.server, 1, { certificate: await leaf(f.server, f.r0, { profile: 'client' }) }), 'E_VERIFY_LEAF', /serverAuth/);
  });

  it('refuses an expired, not yet valid, shorter-lived or identical certificate (E_VALIDITY), changing nothing', async () => {
    const now = f.clock.now();
    await rejects(f.client, renew(f.client, 1, { certificate: await leaf(f.client, f.r0, { from: new Date(T0.getTime() - 900 * DAY), days: 800 }) }), 'E_VALIDITY', /not at/);
    await rejects(f.client, renew(f.client, 1, { certificate: await leaf(f.client, f.r0, { from: new Date(now.getTime() + DAY) }) }), 'E_VALIDITY', /not at/);
    // The fixture's certificates end at T0 + 700 days; one ending at T0 + 600 days would shorten the device's validity.
    await rejects(f.client, renew(f.client, 1, { certificate: await leaf(f.client, f.r0, { days: 598 }) }), 'E_VALIDITY', /not later than the active one/);
    await rejects(f.server, renew(f.server, 1, { certificate: f.server.agent.identities()[0]!.cert }), 'E_VALIDITY', /not later than the active one/);
  });

  it('refuses malformed renewals (E_SCHEMA) and the other role\'s step (E_WRONG_ROLE), changing nothing', async () => {
    const cn = await leaf(f.client, f.r0);
    for (const payload of [{}, { certificate: 'a certificate as text, not PEM, but long enough to pass the length check' }, { certificate: cn, distribution: f.update.distribution }, { certificate: [cn] }]) {
      await rejects(f.client, renew(f.client, 1, payload as StepPayload), 'E_SCHEMA');
    }
    await rejects(f.client, { ...renew(f.client, 1, { certificate: cn }), step: 'RS' }, 'E_WRONG_ROLE');
    await rejects(f.client, { ...renew(f.client, 1, { certificate: cn }), step: 'R9' }, 'E_SCHEMA');
  });

  it('a renewal for a pending re-key key installs it and switches the identity key', async () => {
    await f.client.agent.rekey();
    const pending = f.client.agent.snapshot().pendingKey!;
    const cn = await leaf(f.client, f.r0, { spki: await spkiOf(f.client, pending) });
    const ack = await f.client.agent.handle(renew(f.client, 1, { certificate: cn }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.equal(f.client.agent.identities()[0]!.keyLabel, pending);
    assert.equal(f.client.agent.snapshot().pendingKey, null);
    assertRenewed(f.client, f.r0.cert, cn);
  });
});
