import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deviceFixture, refused, T0, type DeviceFixture, type TestDevice } from '../support/device-fixture.ts';
import { AGENT_BACKENDS, type OpenBackend } from '../support/agent-backends.ts';
import { subjectOf } from '../support/forge.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { createRootUpdate, type RootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { buildCatchUpCommand } from '../../manager/rotation/commands.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { ChainLink, StepPayload } from '../../protocol/messages/command.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import type { Role } from '../../protocol/steps.ts';

const DAY = 86_400_000;

for (const b of AGENT_BACKENDS) describe(`agent on ${b.name}: catch-up of a device that slept through rotations`, function () {
  this.timeout(60_000);
  let backend: OpenBackend;
  let f: DeviceFixture;
  /** The fleet's second rotation (R1 → R2), one day after the first. */
  let update2: RootUpdate;
  before(async () => { backend = await b.open(); });
  after(async () => { await backend?.close(); });
  beforeEach(async () => {
    f = await deviceFixture({ backend });
    f.clock.advance(DAY);
    update2 = await createRootUpdate({ old: f.update.next, now: f.clock.now(), lifetimeDays: 3650 });
    f.clock.advance(DAY);
  });
  afterEach(async () => { await f?.close(); });

  const link1 = (): ChainLink => ({ distribution: f.update.distribution, newRoot: f.update.next.cert });
  const link2 = (): ChainLink => ({ distribution: update2.distribution, newRoot: update2.next.cert });
  const spkiOf = async (dev: TestDevice, label = dev.keyLabel) => (await dev.keys.get(label))!.spki;
  /** A leaf for the device's own key (or `spki`) issued under `issuer`. */
  const leaf = async (dev: TestDevice, issuer: RootUpdate, opts: { spki?: Buffer; profile?: Role } = {}) =>
    new LeafIssuer(issuer.next).issue({ commonName: dev.id, publicKey: opts.spki ?? (await spkiOf(dev)), profile: opts.profile ?? dev.role, notBefore: f.clock.now(), notAfter: new Date(f.clock.now().getTime() + 700 * DAY) });
  const catchUp = (dev: TestDevice, seq: number, payload: StepPayload, rotationId = 'catchup-1') =>
    f.command(dev, seq, dev.role === 'server' ? 'C1' : 'C2', payload, { schedule: 'catch-up', rotationId });

  const rejects = (dev: TestDevice, raw: object, code: string, message?: RegExp): Promise<Ack> => refused(f, dev, raw, code, message);

  /** The device trusts exactly `root` and presents exactly `cert`; OpenSSL agrees the certificate verifies under the stored root. */
  function assertCaughtUp(dev: TestDevice, root: string, cert: string, step: string, rotationId = 'catchup-1'): void {
    const r = dev.agent.snapshot();
    assert.deepEqual(r.trust, { current: root, distribution: null, next: null });
    assert.deepEqual(r.identity, { active: { cert, keyLabel: r.identity.active.keyLabel }, fallback: null });
    assert.deepEqual(r.rotation, { id: rotationId, schedule: 'catch-up', completed: [step] });
    const dir = f.dir;
    writeFileSync(join(dir, `${dev.id}-root.pem`), dev.agent.trustAnchors().join(''));
    writeFileSync(join(dir, `${dev.id}-leaf.pem`), dev.agent.identities()[0]!.cert);
    const out = execFileSync('openssl', ['verify', '-no-CApath', '-no-CAstore', '-CAfile', join(dir, `${dev.id}-root.pem`), '-purpose', dev.role === 'server' ? 'sslserver' : 'sslclient',
      '-attime', String(Math.floor(f.clock.now().getTime() / 1000)), join(dir, `${dev.id}-leaf.pem`)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(out, /: OK/);
  }

  it('a client and a server that slept through one rotation (hold R0) come forward with a one-link chain', async () => {
    const cn = await leaf(f.client, f.update);
    const ack = await f.client.agent.handle(buildCatchUpCommand('cli-1', 'catchup-1', 1, [link1()], cn, f.clock.now()));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.equal(ack.state.trust.current, fingerprintPem(f.update.next.cert));
    assertCaughtUp(f.client, f.update.next.cert, cn, 'C2');
    const sn = await leaf(f.server, f.update);
    const s = await f.server.agent.handle(buildCatchUpCommand('srv-1', 'catchup-1', 1, [link1()], sn, f.clock.now(), 'server'));
    assert.equal(s.ok, true, JSON.stringify(s.error));
    assertCaughtUp(f.server, f.update.next.cert, sn, 'C1');
  });

  it('a device that slept through two rotations (holds R0, the fleet is at R2) comes forward with a two-link chain, durably', async () => {
    const sn = await leaf(f.server, update2);
    const cmd = buildCatchUpCommand('srv-1', 'catchup-1', 1, [link1(), link2()], sn, f.clock.now());
    assert.equal(cmd.step, 'C1', 'the step follows from the certificate\'s serverAuth');
    const ack = await f.server.agent.handle(JSON.stringify(cmd));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assertCaughtUp(f.server, update2.next.cert, sn, 'C1');
    f.server = await f.reopen(f.server);
    assertCaughtUp(f.server, update2.next.cert, sn, 'C1');
    const bytes = await f.bytes(f.server);
    assert.deepEqual(await f.server.agent.handle(JSON.stringify(cmd)), ack, 'a redelivery gets the stored acknowledgement');
    assert.equal(await f.bytes(f.server), bytes, 'and writes nothing');
    // The catch-up counts as finished: the next rotation (R2 → R3) starts on this device.
    f.clock.advance(DAY);
    const update3 = await createRootUpdate({ old: update2.next, now: f.clock.now(), lifetimeDays: 3650 });
    const p1 = await f.server.agent.handle(f.command(f.server, 2, 'P1', { distribution: update3.distribution }, { rotationId: 'rot-3' }));
    assert.equal(p1.ok, true, JSON.stringify(p1.error));
  });

  it('a client stuck after P2 of a rotation it was excluded from comes forward (the chain supersedes its D)', async () => {
    assert.equal((await f.client.agent.handle(f.command(f.client, 1, 'P2', { distribution: f.update.distribution }))).ok, true);
    const cn = await leaf(f.client, update2);
    const ack = await f.client.agent.handle(buildCatchUpCommand('cli-1', 'catchup-1', 2, [link1(), link2()], cn, f.clock.now()));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assertCaughtUp(f.client, update2.next.cert, cn, 'C2');
    // Late steps of the rotation it was stuck in are refused and change nothing: P3 is out of order, and a fresh
    // P2 does not verify (that D is signed by R0, which the device no longer trusts).
    await rejects(f.client, f.command(f.client, 3, 'P3', { certificate: f.cn }), 'E_OUT_OF_ORDER', /next allowed is P2/);
    await rejects(f.client, f.command(f.client, 3, 'P2', { distribution: f.update.distribution }), 'E_VERIFY_D');
  });

  it('a server stuck after P1 comes forward under the stuck rotation\'s own id; a client stuck after B1 drops Cn and its fallback', async () => {
    assert.equal((await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }))).ok, true);
    const sn = await leaf(f.server, f.update);
    const s = await f.server.agent.handle(catchUp(f.server, 2, { chain: [link1()], certificate: sn }, 'rot-1'));
    assert.equal(s.ok, true, JSON.stringify(s.error));
    assertCaughtUp(f.server, f.update.next.cert, sn, 'C1', 'rot-1');

    assert.equal((await f.client.agent.handle(f.command(f.client, 1, 'B1', { distribution: f.update.distribution, newRoot: f.update.next.cert, certificate: f.cn }))).ok, true);
    assert.equal(f.client.agent.identities().length, 2);
    const cn = await leaf(f.client, update2);
    const c = await f.client.agent.handle(catchUp(f.client, 2, { chain: [link1(), link2()], certificate: cn }));
    assert.equal(c.ok, true, JSON.stringify(c.error));
    assertCaughtUp(f.client, update2.next.cert, cn, 'C2');
  });

  it('a certificate for a pending re-key key installs and switches the identity key', async () => {
    await f.client.agent.rekey();
    const pending = f.client.agent.snapshot().pendingKey!;
    const cn = await leaf(f.client, f.update, { spki: await spkiOf(f.client, pending) });
    const ack = await f.client.agent.handle(catchUp(f.client, 1, { chain: [link1()], certificate: cn }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.equal(f.client.agent.identities()[0]!.keyLabel, pending);
    assert.equal(f.client.agent.snapshot().pendingKey, null);
  });

  it('refuses a D signed by another key, in the first or a later link (E_VERIFY_D), and changes nothing', async () => {
    const cn = await leaf(f.client, update2);
    const attacker0 = await createRoot({ subject: subjectOf(f.r0.cert), algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3000 * DAY) });
    const forged0 = await createRootUpdate({ old: attacker0, now: f.clock.now(), lifetimeDays: 100 });
    await rejects(f.client, catchUp(f.client, 1, { chain: [{ distribution: forged0.distribution, newRoot: forged0.next.cert }], certificate: await leaf(f.client, forged0) }), 'E_VERIFY_D', /link 1 of 1.*not signed by the trusted root/);
    const attacker1 = await createRoot({ subject: subjectOf(f.update.next.cert), algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3000 * DAY) });
    const forged1 = await createRootUpdate({ old: attacker1, now: f.clock.now(), lifetimeDays: 100 });
    await rejects(f.client, catchUp(f.client, 1, { chain: [link1(), { distribution: forged1.distribution, newRoot: forged1.next.cert }], certificate: await leaf(f.client, forged1) }), 'E_VERIFY_D', /link 2 of 2/);
    // Links in the wrong order, or a skipped link, do not verify from R0 either.
    await rejects(f.client, catchUp(f.client, 1, { chain: [link2(), link1()], certificate: cn }), 'E_VERIFY_D', /link 1 of 2/);
    await rejects(f.client, catchUp(f.client, 1, { chain: [link2()], certificate: cn }), 'E_VERIFY_D', /link 1 of 1/);
  });

  it('refuses a swapped R (E_VERIFY_R1), and changes nothing', async () => {
    const other = await createRootUpdate({ old: f.r0, now: f.clock.now(), lifetimeDays: 3650 });
    await rejects(f.server, catchUp(f.server, 1, { chain: [{ distribution: f.update.distribution, newRoot: other.next.cert }], certificate: await leaf(f.server, other) }), 'E_VERIFY_R1', /link 1 of 1.*different public key/);
    const sn = await leaf(f.server, update2);
    await rejects(f.server, catchUp(f.server, 1, { chain: [{ ...link1(), newRoot: update2.next.cert }, { ...link2(), newRoot: f.update.next.cert }], certificate: sn }), 'E_VERIFY_R1', /link 1 of 2/);
  });

  it('refuses a certificate for another key (E_LEAF_KEY_MISMATCH), under an older root or for the other role (E_VERIFY_LEAF), and changes nothing', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    await rejects(f.server, catchUp(f.server, 1, { chain: [link1(), link2()], certificate: await leaf(f.server, update2, { spki: stranger }) }), 'E_LEAF_KEY_MISMATCH', /another key/);
    await rejects(f.server, catchUp(f.server, 1, { chain: [link1(), link2()], certificate: await leaf(f.server, f.update) }), 'E_VERIFY_LEAF', /not issued by the new root key/);
    await rejects(f.client, catchUp(f.client, 1, { chain: [link1()], certificate: await leaf(f.client, f.update, { profile: 'server' }) }), 'E_VERIFY_LEAF', /clientAuth/);
  });

  it('refuses a second catch-up once the device holds the fleet root: nothing is trusted on first use', async () => {
    const cn = await leaf(f.client, f.update);
    assert.equal((await f.client.agent.handle(catchUp(f.client, 1, { chain: [link1()], certificate: cn }))).ok, true);
    await rejects(f.client, catchUp(f.client, 2, { chain: [link1()], certificate: cn }, 'catchup-2'), 'E_VERIFY_D', /link 1 of 1/);
    await rejects(f.client, catchUp(f.client, 2, { chain: [link1()], certificate: cn }), 'E_OUT_OF_ORDER', /rotation complete/);
  });

  it('refuses malformed catch-up payloads (E_SCHEMA): no links, more than 8, extra or missing fields, a non-PEM link', async () => {
    const cn = await leaf(f.client, f.update);
    for (const payload of [
      { chain: [], certificate: cn },
      { chain: Array.from({ length: 9 }, link1), certificate: cn },
      { chain: [{ ...link1(), oldWithNew: f.update.oldWithNew }], certificate: cn },
      { chain: [{ distribution: f.update.distribution }], certificate: cn },
      { chain: [link1()] },
      { chain: [link1()], certificate: cn, distribution: f.update.distribution },
      { chain: [{ ...link1(), newRoot: 'R1 as text, not a certificate; long enough to pass the length check' }], certificate: cn },
      { chain: link1(), certificate: cn },
    ]) {
      await rejects(f.client, catchUp(f.client, 1, payload as StepPayload), 'E_SCHEMA');
    }
    await rejects(f.client, { ...catchUp(f.client, 1, { chain: [link1()], certificate: cn }), step: 'C1' }, 'E_WRONG_ROLE');
  });
});
