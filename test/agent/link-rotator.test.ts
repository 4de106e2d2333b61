import { strict as assert } from 'node:assert';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkLinkFiles } from '../../agent/link-tls.ts';
import { LinkRotator } from '../../agent/link-rotation/link-rotator.ts';
import { LINK_FILES } from '../../agent/link-rotation/link-store.ts';
import { stageLinkMaterial, type LinkMaterial } from '../../manager/link-rotation/link-material.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { commandSigner, commandVerifier } from '../../protocol/command-signature.ts';
import { LINK_ROTATION } from '../../protocol/link-schedule.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { fingerprintPem, spkiOf } from '../../protocol/pem.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { deviceFixture, type DeviceFixture } from '../support/device-fixture.ts';

/** A client device of the fleet PKI whose management link rotates: the same sequence numbers, its own link record. */
describe('agent: link commands (management-root rotation) on the device', () => {
  let f: DeviceFixture;
  let pki: ManagementPki;
  let material: LinkMaterial;
  let rotator: LinkRotator;
  let sign: (c: Command) => Command;
  let link: { url: string; ca: string; cert: string; key: string; commandKeys: Record<string, string> };
  // The configured files are the factory's (read only); the rotation writes under the state folder's link folder.
  let state = '';
  const linkStatePath = () => join(state, LINK_FILES.record);

  beforeEach(async () => {
    f = await deviceFixture();
    pki = await ManagementPki.create({ now: f.clock.now() });
    const mgmt = join(f.dir, 'mgmt');
    pki.save(mgmt);
    const id = f.client.id;
    const linkDir = join(f.dir, 'etc');
    mkdirSync(linkDir);
    state = join(f.dir, 'state', 'link');
    const put = (name: string, text: string) => { writeFileSync(join(linkDir, name), text); return join(linkDir, name); };
    const identity = pki.device(id);
    link = {
      url: 'mqtts://127.0.0.1:1', ca: put('ca.pem', pki.ca), cert: put('device.pem', identity.cert), key: put('device.key', identity.key),
      commandKeys: { [pki.commandKey.keyId]: put('command-key.pem', createPublicKey(pki.commandKey.privateKey).export({ type: 'spki', format: 'pem' }) as string) },
    };
    material = await stageLinkMaterial(mgmt, new Map([[id, identity.cert]]), { now: f.clock.now() });
    const checked = checkLinkFiles(link);
    sign = commandSigner(pki.commandKey);
    rotator = new LinkRotator({
      place: { dir: state, link }, checked, key: checked.key, agent: f.client.agent, keys: f.client.keys, clock: f.clock, logger: createLogger({ level: 'error' }),
      verifySignature: commandVerifier(checked.commandKeys),
    });
  });
  afterEach(() => f.close());

  const cmd = (seq: number, step: 'LC1' | 'LC2', payload: Command['payload'] = step === 'LC1' ? { distribution: material.distribution, newRoot: material.newRoot, certificate: material.devices[f.client.id]! } : {}): Command => ({
    v: 1, kind: 'command', deviceId: f.client.id, rotationId: 'link-1', schedule: LINK_ROTATION.name, seq, step, issuedAt: f.clock.now().toISOString(), payload,
  });
  const send = (c: Command) => rotator.handle(Buffer.from(JSON.stringify(c)));

  it('shares the device\'s sequence numbers: a link command not newer than the last fleet command is a replay', async () => {
    const p2 = await f.client.agent.handle(f.command(f.client, 5, 'P2', { distribution: f.update.distribution }));
    assert.equal(p2.ok, true);
    const stale = await send(sign(cmd(4, 'LC1')));
    assert.equal(stale.ack.error?.code, 'E_REPLAY');
    assert.equal(stale.changed, false);
    assert.ok(!existsSync(linkStatePath()), 'nothing written');
    const fresh = await send(sign(cmd(6, 'LC1')));
    assert.equal(fresh.ack.ok, true, fresh.ack.error?.message);
    assert.equal(rotator.lastSeq(), 6);
    assert.equal(fresh.ack.state.trust.next, fingerprintPem(material.newRoot));
    assert.ok(fresh.ack.sig, 'signed with the device\'s identity key like every acknowledgement');
    // The link presents the new certificate first, the old one as fallback, against R0, D and R1.
    const m = rotator.material();
    assert.deepEqual(m.map((x) => fingerprintPem(x.cert)), [fingerprintPem(material.devices[f.client.id]!), fingerprintPem(pki.device(f.client.id).cert)]);
    assert.equal(m[0]!.ca.match(/BEGIN CERTIFICATE/g)!.length, 3);
    assert.equal(new X509Certificate(readFileSync(join(state, LINK_FILES.cert), 'utf8')).fingerprint256, new X509Certificate(material.devices[f.client.id]!).fingerprint256);
    assert.equal(readFileSync(link.cert, 'utf8'), pki.device(f.client.id).cert, 'the configured (factory) certificate is only read');
  });

  it('refuses an unsigned command, LC2 before LC1, and a link certificate for another key, writing nothing', async () => {
    const other = await ManagementPki.create({ now: f.clock.now() });
    // Under the rotation's own K1, but for another device's key.
    const k1 = new LeafIssuer({ cert: material.newRoot, key: createPrivateKey(readFileSync(join(f.dir, 'mgmt', 'link-rotation', 'ca-next-key.pem'), 'utf8')) });
    const now = f.clock.now();
    const wrongKey = k1.issue({ commonName: f.client.id, publicKey: spkiOf(new X509Certificate(other.device(f.client.id).cert)), profile: 'client', notBefore: now, notAfter: new Date(now.getTime() + 86_400_000) });
    const results = [
      await send(cmd(1, 'LC1')),
      await send(sign(cmd(2, 'LC2'))),
      await send(sign(cmd(3, 'LC1', { distribution: material.distribution, newRoot: material.newRoot, certificate: wrongKey }))),
    ];
    assert.deepEqual(results.map((r) => r.ack.error?.code), ['E_SIGNATURE', 'E_OUT_OF_ORDER', 'E_LEAF_KEY_MISMATCH']);
    assert.ok(results.every((r) => !r.changed));
    assert.ok(!existsSync(linkStatePath()), 'nothing written');
    assert.equal(readFileSync(link.ca, 'utf8'), pki.ca);
  });

  it('after LC2 it trusts only R1 and presents only its new certificate; a redelivery is answered from the stored result', async () => {
    const lc1 = sign(cmd(1, 'LC1'));
    assert.equal((await send(lc1)).ack.ok, true);
    const lc2 = await send(sign(cmd(2, 'LC2')));
    assert.equal(lc2.ack.ok, true, lc2.ack.error?.message);
    assert.deepEqual(rotator.material().map((x) => fingerprintPem(x.cert)), [fingerprintPem(material.devices[f.client.id]!)]);
    assert.equal(readFileSync(join(state, LINK_FILES.ca), 'utf8').match(/BEGIN CERTIFICATE/g)!.length, 1);
    assert.equal(readFileSync(link.ca, 'utf8'), pki.ca, 'the configured (factory) CA is only read');
    const before = readFileSync(linkStatePath(), 'utf8');
    const first = JSON.parse(before) as { body: string };
    const again = await send(lc1);
    assert.equal(again.changed, false);
    assert.equal(again.ack.ok, true, 'the stored acknowledgement of LC1');
    assert.equal(again.ack.seq, 1);
    assert.ok(first.body.includes(again.ack.sig!.value), 'byte for byte the stored one');
    const altered = await send(sign({ ...cmd(1, 'LC1'), issuedAt: new Date(f.clock.now().getTime() + 1).toISOString() }));
    assert.equal(altered.ack.error?.code, 'E_REPLAY', 'another command under a used sequence number');
    assert.equal(readFileSync(linkStatePath(), 'utf8'), before);
  });
});
