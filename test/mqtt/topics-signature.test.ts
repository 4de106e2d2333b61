import { strict as assert } from 'node:assert';
import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { commandKeyId, commandSigner, commandVerifier, signCommand, verifyCommandSignature } from '../../protocol/command-signature.ts';
import { isProtocolError } from '../../protocol/errors.ts';
import type { Command } from '../../protocol/messages/command.ts';
import {
  ACK_FILTER, assertDeviceId, deviceTopic, MANAGER_IDENTITY, mayPublish, mayReceive, maySubscribe, mosquittoAcl, parseDeviceTopic, STATE_FILTER,
  RELAY_ACK_FILTER, RELAY_STATE_FILTER, relayTopic,
} from '../../protocol/topics.ts';

const cmd = (): Command => ({
  v: 1, kind: 'command', deviceId: 'cli-1', rotationId: 'rot-1', schedule: 'six-step', seq: 3, step: 'P2',
  issuedAt: '2026-11-24T00:00:00.000Z', payload: { distribution: '-----BEGIN CERTIFICATE-----\nMIIB' },
});

describe('mqtt topics and access rules', () => {
  it('builds and parses per-device topics; rejects ids that would break them', () => {
    assert.equal(deviceTopic('srv-1', 'cmd'), 'trustroll/v1/dev/srv-1/cmd');
    assert.deepEqual(parseDeviceTopic('trustroll/v1/dev/cli-9/desired'), { deviceId: 'cli-9', kind: 'desired' });
    assert.equal(parseDeviceTopic('trustroll/v1/dev/cli-9/other'), null);
    assert.equal(parseDeviceTopic('trustroll/v2/dev/cli-9/cmd'), null);
    for (const bad of ['a/b', 'a+b', '#', '+', '', ' x', MANAGER_IDENTITY, 'x'.repeat(129)]) {
      assert.throws(() => assertDeviceId(bad), (e) => isProtocolError(e, 'E_SCHEMA'), JSON.stringify(bad));
      assert.throws(() => deviceTopic(bad, 'cmd'), (e) => isProtocolError(e, 'E_SCHEMA'));
    }
  });

  it('a device reads only its own cmd/desired and writes only its own ack/state; only the manager publishes commands', () => {
    assert.ok(mayPublish('cli-1', 'trustroll/v1/dev/cli-1/ack'));
    assert.ok(mayPublish('cli-1', 'trustroll/v1/dev/cli-1/state'));
    assert.ok(!mayPublish('cli-1', 'trustroll/v1/dev/cli-2/ack'));
    assert.ok(!mayPublish('cli-1', 'trustroll/v1/dev/cli-1/cmd'));
    assert.ok(!mayPublish('cli-1', 'trustroll/v1/dev/cli-1/desired'));
    assert.ok(mayPublish(MANAGER_IDENTITY, 'trustroll/v1/dev/cli-2/cmd'));
    assert.ok(!mayPublish(MANAGER_IDENTITY, 'trustroll/v1/dev/cli-2/ack'));
    assert.ok(maySubscribe('cli-1', 'trustroll/v1/dev/cli-1/cmd'));
    for (const f of ['trustroll/v1/dev/cli-2/cmd', 'trustroll/v1/dev/+/cmd', '#', 'trustroll/#', 'trustroll/v1/dev/cli-1/ack']) assert.ok(!maySubscribe('cli-1', f), f);
    assert.ok(maySubscribe(MANAGER_IDENTITY, ACK_FILTER) && maySubscribe(MANAGER_IDENTITY, STATE_FILTER));
    assert.ok(!maySubscribe(MANAGER_IDENTITY, 'trustroll/v1/dev/+/cmd') && !maySubscribe(MANAGER_IDENTITY, '#'));
    assert.ok(mayReceive('cli-1', 'trustroll/v1/dev/cli-1/desired') && !mayReceive('cli-1', 'trustroll/v1/dev/cli-2/desired'));
  });

  it('renders the same rules as a Mosquitto ACL keyed on the certificate identity (%u)', () => {
    const acl = mosquittoAcl();
    assert.match(acl, /^user trustroll-manager$/m);
    assert.match(acl, /^topic write trustroll\/v1\/dev\/\+\/cmd$/m);
    assert.match(acl, /^pattern read trustroll\/v1\/dev\/%u\/cmd$/m);
    assert.match(acl, /^pattern write trustroll\/v1\/dev\/%u\/ack$/m);
    assert.doesNotMatch(acl, /%c/, 'never keyed on the client id');
    assert.doesNotMatch(acl, /pattern write .*\/cmd/, 'devices never publish commands');
    assert.match(acl, /^pattern read trustroll\/v1\/dev\/%u\/via\/\+\/cmd$/m);
    assert.match(acl, /^pattern write trustroll\/v1\/dev\/%u\/via\/\+\/ack$/m);
    assert.match(acl, /^topic write trustroll\/v1\/dev\/\+\/via\/\+\/cmd$/m);
  });

  it('relay topics: a relay reads and writes under its own id only, for the devices behind it', () => {
    assert.equal(relayTopic('prn-1', 'cli-1', 'cmd'), 'trustroll/v1/dev/prn-1/via/cli-1/cmd');
    assert.deepEqual(parseDeviceTopic('trustroll/v1/dev/prn-1/via/cli-1/ack'), { deviceId: 'cli-1', kind: 'ack', via: 'prn-1' });
    for (const bad of ['trustroll/v1/dev/prn-1/via/prn-1/ack', 'trustroll/v1/dev/prn-1/by/cli-1/ack', 'trustroll/v1/dev/prn-1/via/cli-1/other', 'trustroll/v1/dev/prn-1/via/+/ack']) assert.equal(parseDeviceTopic(bad), null, bad);
    assert.throws(() => relayTopic('cli-1', 'cli-1', 'cmd'), /own relay/);
    assert.ok(mayPublish('prn-1', 'trustroll/v1/dev/prn-1/via/cli-1/ack') && mayPublish('prn-1', 'trustroll/v1/dev/prn-1/via/cli-1/state'));
    assert.ok(!mayPublish('prn-1', 'trustroll/v1/dev/prn-1/via/cli-1/cmd'), 'a relay never publishes commands');
    assert.ok(!mayPublish('prn-2', 'trustroll/v1/dev/prn-1/via/cli-1/ack'), 'nor speaks under another relay\'s id');
    assert.ok(!mayPublish('cli-1', 'trustroll/v1/dev/prn-1/via/cli-1/ack'), 'nor does the relayed device itself over the broker');
    assert.ok(maySubscribe('prn-1', 'trustroll/v1/dev/prn-1/via/+/cmd') && maySubscribe('prn-1', 'trustroll/v1/dev/prn-1/via/+/desired'));
    for (const f of ['trustroll/v1/dev/prn-2/via/+/cmd', 'trustroll/v1/dev/prn-1/via/+/ack', 'trustroll/v1/dev/+/via/+/cmd', 'trustroll/v1/dev/prn-1/via/#']) assert.ok(!maySubscribe('prn-1', f), f);
    assert.ok(maySubscribe(MANAGER_IDENTITY, RELAY_ACK_FILTER) && maySubscribe(MANAGER_IDENTITY, RELAY_STATE_FILTER));
    assert.ok(mayPublish(MANAGER_IDENTITY, 'trustroll/v1/dev/prn-1/via/cli-1/cmd') && !mayPublish(MANAGER_IDENTITY, 'trustroll/v1/dev/prn-1/via/cli-1/ack'));
    assert.ok(mayReceive('prn-1', 'trustroll/v1/dev/prn-1/via/cli-1/cmd') && !mayReceive('cli-1', 'trustroll/v1/dev/prn-1/via/cli-1/cmd'));
  });
});

describe('command signatures', () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const key = { keyId: commandKeyId(pair.publicKey), privateKey: pair.privateKey };
  const trusted = new Map([[key.keyId, pair.publicKey]]);

  it('signs the canonical command without sig; the device verifies it', () => {
    const signed = signCommand(cmd(), key);
    assert.equal(signed.sig?.alg, 'ES256');
    assert.equal(signed.sig?.keyId, key.keyId);
    verifyCommandSignature(signed, trusted);
    const reordered = Object.fromEntries(Object.entries(signed).reverse()) as unknown as Command; // key order does not matter
    verifyCommandSignature(reordered, trusted);
    verifyCommandSignature(signCommand(signed, key), trusted);
  });

  it('rejects altered, unsigned, unknown-key and wrong-key commands with E_SIGNATURE', () => {
    const signed = signCommand(cmd(), key);
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const cases: [string, Command][] = [
      ['seq changed', { ...signed, seq: 4 }],
      ['payload changed', { ...signed, payload: { distribution: signed.payload.distribution + 'A' } }],
      ['unsigned', cmd()],
      ['unknown key', { ...signed, sig: { ...signed.sig!, keyId: 'cmd-unknown' } }],
      ['other key, same id', signCommand(cmd(), { keyId: key.keyId, privateKey: other.privateKey })],
      ['garbage value', { ...signed, sig: { ...signed.sig!, value: 'AAAA' } }],
    ];
    for (const [what, c] of cases) assert.throws(() => verifyCommandSignature(c, trusted), (e) => isProtocolError(e, 'E_SIGNATURE'), what);
  });

  it('trusts several keys (signing-key rollover) and refuses non-P-256 keys', () => {
    const next = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const nextKey = { keyId: commandKeyId(next.privateKey), privateKey: next.privateKey };
    const verify = commandVerifier(new Map([[key.keyId, pair.publicKey], [nextKey.keyId, next.privateKey]]));
    verify(commandSigner(key)(cmd()));
    verify(commandSigner(nextKey)(cmd()));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    assert.throws(() => commandSigner({ keyId: 'rsa', privateKey: rsa.privateKey }), (e) => isProtocolError(e, 'E_SIGNATURE'));
    assert.throws(() => commandVerifier(new Map([['rsa', rsa.publicKey]])), (e) => isProtocolError(e, 'E_SIGNATURE'));
  });
});

describe('management PKI', () => {
  it('issues broker, manager and device identities under its own CA; never prints a private key', async () => {
    const pki = await ManagementPki.create({ now: new Date() });
    const { X509Certificate } = await import('node:crypto');
    const ca = new X509Certificate(pki.ca);
    const manager = new X509Certificate(pki.manager.cert);
    const device = new X509Certificate(pki.device('srv-7').cert);
    const broker = new X509Certificate(pki.broker.cert);
    assert.ok(manager.checkIssued(ca) && device.checkIssued(ca) && broker.checkIssued(ca));
    assert.match(manager.subject, /CN=trustroll-manager/);
    assert.match(device.subject, /CN=srv-7/);
    assert.ok(broker.checkIP('127.0.0.1') && broker.checkHost('localhost'));
    assert.equal(pki.device('srv-7'), pki.device('srv-7'), 'issued once per device');
    assert.throws(() => pki.device(MANAGER_IDENTITY), (e) => isProtocolError(e, 'E_SCHEMA'), 'no device may take the manager\'s identity');
    const shown = JSON.stringify(pki) + inspect(pki) + String(pki);
    assert.doesNotMatch(shown, /PRIVATE KEY/);
    assert.equal(pki.trustedCommandKeys().get(pki.commandKey.keyId)?.type, 'public');
  });
});
