import { strict as assert } from 'node:assert';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { scriptedBroker } from '../../manager/link-rotation/broker-control.ts';
import { loadLinkJournal } from '../../manager/link-rotation/link-journal.ts';
import { recordLinkCertificate, stagedLinkMaterial } from '../../manager/link-rotation/link-material.ts';
import { rotateManagementRoot, type LinkRotationResult } from '../../manager/link-rotation/link-rotation.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { mqttTransport } from '../../manager/manager.ts';
import type { MqttManagerTransport } from '../../manager/transport/mqtt-transport.ts';
import { commandSigner } from '../../protocol/command-signature.ts';
import { LINK_ROTATION } from '../../protocol/link-schedule.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Ack } from '../../protocol/messages/ack.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { validateSchedule } from '../../protocol/schedule.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { startDevice, stopAll, type DeviceProc, type Tally } from '../../demo/device-process.ts';
import { fleetShape, provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';
import { Mosquitto } from '../../demo/mosquitto.ts';

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** One fleet of agent processes (2 printers, 2 consoles) behind a real Mosquitto; the management root rotates under it. */
describe('mqtt: management-root rotation (broker = server, devices = clients)', function () {
  this.timeout(120_000);
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', sink: (l) => lines.push(l) });
  let dir = '';
  let mgmt = '';
  let pki: ManagementPki;
  let mosquitto: Mosquitto;
  let db: FleetDb;
  let procs: DeviceProc[] = [];
  const configs = new Map<string, string>();
  const earlierTallies: Tally[] = [];
  const ids = fleetShape(2, 2);
  const linkDir = (id: string) => join(dir, 'devices', id, 'link');
  const linkState = (id: string) => join(linkDir(id), 'link-state.json');

  /** Send commands on the manager's link and collect the acknowledgements for their sequence numbers. */
  async function exchange(t: MqttManagerTransport, cmds: Command[]): Promise<Ack[]> {
    const want = new Set(cmds.map((c) => `${c.deviceId}/${c.seq}`));
    const got = new Map<string, Ack>();
    t.onAck((raw) => { const a = raw as Ack; if (want.has(`${a.deviceId}/${a.seq}`)) got.set(`${a.deviceId}/${a.seq}`, a); });
    for (const c of cmds) t.send(c);
    const end = Date.now() + 15_000;
    while (got.size < want.size && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(got.size, want.size, 'every command was answered');
    return cmds.map((c) => got.get(`${c.deviceId}/${c.seq}`)!);
  }

  const realSigner = () => {
    const key = ManagementPki.load(mgmt, new Date()).commandKey;
    return commandSigner(key);
  };
  const forgedSigner = () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return commandSigner({ keyId: ManagementPki.load(mgmt, new Date()).commandKey.keyId, privateKey });
  };
  const linkCmd = (id: string, step: 'LC1' | 'LC2', payload: Command['payload'], rotationId = 'link-test-forged'): Command => ({
    v: 1, kind: 'command', deviceId: id, rotationId, schedule: LINK_ROTATION.name, seq: db.allocateSeq(id), step, issuedAt: new Date().toISOString(), payload,
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-linkrot-'));
    mgmt = join(dir, 'mgmt');
    pki = await ManagementPki.create({ now: new Date() });
    pki.save(mgmt);
    mosquitto = await Mosquitto.start(pki);
    mkdirSync(join(dir, 'manager'), { recursive: true });
    const ca = await CaAuthority.openOrInit(join(dir, 'manager', 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll test', now: new Date() });
    db = new FleetDb(join(dir, 'manager', 'manager.db'));
    const ports = await serverPorts(ids);
    for (const [id, role] of ids) {
      configs.set(id, await provisionDevice(dir, id, role, { pki, ca, db, brokerUrl: mosquitto.url, ports, naive: false, logger }));
      recordLinkCertificate(mgmt, id, pki.device(id).cert);
    }
    const launch = (wanted: string) => ids.filter(([, r]) => r === wanted).map(([id, role]) => startDevice(id, role, join(dir, 'devices', id), configs.get(id)!));
    const servers = launch('server');
    procs.push(...servers);
    await Promise.all(servers.map((p) => p.ready));
    const clients = launch('client');
    procs.push(...clients);
    await Promise.all(clients.map((p) => p.ready));
  });

  after(async () => {
    await stopAll(procs).catch(() => undefined);
    procs = [];
    db?.close();
    await mosquitto?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(lines.slice(-60).join('\n'));
  });

  it('the link schedule passes the ordering rules of every rotation schedule', () => {
    const report = validateSchedule(LINK_ROTATION);
    assert.deepEqual(report.sequence, { server: ['LB1', 'LB2', 'LB3'], client: ['LC1', 'LC2'] });
    assert.deepEqual(report.warnings, []);
  });

  it('a forged or out-of-order link command changes nothing', async () => {
    const other = await ManagementPki.create({ now: new Date() });
    const caBefore = readFileSync(join(linkDir('console-1'), 'ca.pem'), 'utf8');
    const t = mqttTransport({ url: mosquitto.url, pki, logger, db });
    try {
      await t.ready(10_000);
      const sign = realSigner();
      const acks = await exchange(t, [
        forgedSigner()(linkCmd('console-1', 'LC1', { distribution: other.ca, newRoot: other.ca, certificate: other.device('console-1').cert })),
        sign(linkCmd('console-1', 'LC2', {})),
        sign(linkCmd('printer-1', 'LC1', { distribution: other.ca, newRoot: other.ca, certificate: other.device('printer-1').cert })),
      ]);
      assert.deepEqual(acks.map((a) => [a.ok, a.error?.code]), [[false, 'E_SIGNATURE'], [false, 'E_OUT_OF_ORDER'], [false, 'E_VERIFY_D']]);
    } finally {
      await t.close();
    }
    for (const [id] of ids) assert.ok(!existsSync(linkState(id)), `${id}: no link record written`);
    assert.equal(readFileSync(join(linkDir('console-1'), 'ca.pem'), 'utf8'), caBefore, 'link CA file untouched');
  });

  let result: LinkRotationResult;
  it('rotates the management root through three broker restarts (one more mid-step): every device ends under the new root only', async () => {
    const oldRoot = pki.ca;
    const broker = { install: scriptedBroker({ dir: mosquitto.dir, restartCommand: 'true', url: mosquitto.url }).install, restart: () => mosquitto.restart() };
    // A console that is away when LC1 is sent: the rotation stops where it is (the broker trusts both roots, nobody lost the link).
    const away = procs.find((p) => p.id === 'console-2')!;
    procs = procs.filter((p) => p !== away);
    earlierTallies.push(...await stopAll([away]));
    await assert.rejects(rotateManagementRoot({ mgmtDir: mgmt, db, brokerUrl: mosquitto.url, logger, broker, ackTimeoutMs: 1_500, maxAttempts: 2 }), /E_ACK_TIMEOUT.*console-2/);
    const stopped = loadLinkJournal(mgmt)!;
    assert.deepEqual(stopped.done, ['LB1']);
    assert.deepEqual(Object.entries(stopped.acked).filter(([, s]) => s.includes('LC1')).map(([id]) => id).sort(), ['console-1', 'printer-1', 'printer-2']);
    await assert.rejects(rotateManagementRoot({ mgmtDir: mgmt, db, brokerUrl: mosquitto.url, logger, broker }), /E_ROTATION_ACTIVE/);
    assert.equal(db.openLinkRotation(), stopped.id, 'fleet rotations see it open (they refuse to start)');
    // It comes back with its old link material (the broker still trusts R0), and the rotation resumes from its journal.
    const back = startDevice('console-2', 'client', join(dir, 'devices', 'console-2'), configs.get('console-2')!);
    procs.push(back);
    await back.ready;
    let extraRestart = false;
    result = await rotateManagementRoot({
      mgmtDir: mgmt, db, brokerUrl: mosquitto.url, logger, ackTimeoutMs: 8_000, maxAttempts: 3, broker, resume: true,
      // Commands and acknowledgements in flight while the broker restarts must survive in the persistent sessions.
      afterSend: async (step) => { if (step === 'LC1') { await mosquitto.restart(); extraRestart = true; } },
    });
    assert.ok(extraRestart);
    assert.equal(result.id, stopped.id, 'the same rotation resumed');
    const m = stagedLinkMaterial(mgmt)!;
    const newRoot = m.newRoot;
    assert.notEqual(fingerprintPem(newRoot), fingerprintPem(oldRoot));
    assert.equal(result.devices, ids.length);
    assert.equal(result.restarts, 3);
    // The LC1 sent while console-2 was away waited in its persistent session: it applied it on return, and its
    // acknowledgement waited in the manager's session, so the resumed run may find it answered before sending again.
    assert.ok([ids.length, ids.length + 1].includes(result.commands), `after resuming: LC2 to every device (and LC1 to console-2 unless already answered): ${result.commands}`);
    assert.equal(result.resent, 0, 'nothing had to be sent again: no command or acknowledgement was lost');
    assert.equal(result.acks, 1 + ids.length);
    assert.equal(loadLinkJournal(mgmt)!.commands['console-2']!.LC1!.seq, stopped.commands['console-2']!.LC1!.seq, 'the resumed LC1 is the command first sent');
    const journal = loadLinkJournal(mgmt)!;
    assert.deepEqual(journal.done, ['LB1', 'LC1', 'LB2', 'LC2', 'LB3']);
    assert.ok(journal.finishedAt);
    assert.equal(db.openLinkRotation(), null, 'finished: fleet rotations may start again');
    // The manager's own folder now holds the new root, and the broker trusts only it.
    assert.equal(readFileSync(join(mgmt, 'ca.pem'), 'utf8'), newRoot);
    assert.deepEqual(readFileSync(join(mosquitto.dir, 'mgmt-ca.pem'), 'utf8').match(PEM)!.map(fingerprintPem), [fingerprintPem(newRoot)]);
    for (const [id] of ids) {
      const sealed = JSON.parse(readFileSync(linkState(id), 'utf8')) as { body: string };
      const rec = JSON.parse(sealed.body) as { trust: { current: string; distribution: null; next: null }; identity: { active: { cert: string }; fallback: null }; rotation: { completed: string[] }; results: { step: string }[] };
      assert.equal(fingerprintPem(rec.trust.current), fingerprintPem(newRoot), `${id}: trusts R1`);
      assert.equal(rec.trust.distribution, null);
      assert.equal(rec.trust.next, null);
      assert.equal(rec.identity.fallback, null, `${id}: old link certificate dropped`);
      assert.deepEqual(rec.rotation.completed, ['LC1', 'LC2'], `${id}: each link step once, in order`);
      const leaf = new X509Certificate(readFileSync(join(linkDir(id), 'link-cert.pem'), 'utf8'));
      assert.ok(leaf.verify(new X509Certificate(newRoot).publicKey), `${id}: link certificate under the new root`);
      assert.equal(leaf.subject.includes(`CN=${id}`), true);
      assert.deepEqual(readFileSync(join(linkDir(id), 'link-ca.pem'), 'utf8').match(PEM)!.map(fingerprintPem), [fingerprintPem(newRoot)], `${id}: the link CA copy under the state folder holds only R1`);
      assert.deepEqual(readFileSync(join(linkDir(id), 'ca.pem'), 'utf8').match(PEM)!.map(fingerprintPem), [fingerprintPem(oldRoot)], `${id}: the configured (factory) CA file is only read`);
    }
  });

  it('after the rotation the devices answer under the new root; a replayed command changes nothing, a forged one is refused', async () => {
    const now = ManagementPki.load(mgmt, new Date());
    const t = mqttTransport({ url: mosquitto.url, pki: now, logger, db });
    try {
      await t.ready(15_000);
      const journal = loadLinkJournal(mgmt)!;
      const replay = journal.commands['console-2']!.LC1!;
      const before = readFileSync(linkState('console-2'), 'utf8');
      const other = await ManagementPki.create({ now: new Date() });
      const [again, forged] = await exchange(t, [replay, forgedSigner()(linkCmd('printer-2', 'LC1', { distribution: other.ca, newRoot: other.ca, certificate: other.device('printer-2').cert }))]);
      assert.equal(again!.ok, true, 'a redelivered command gets its stored acknowledgement');
      assert.equal(again!.seq, replay.seq);
      assert.equal(forged!.ok, false);
      assert.equal(forged!.error?.code, 'E_SIGNATURE');
      assert.equal(readFileSync(linkState('console-2'), 'utf8'), before, 'nothing rewritten');
    } finally {
      await t.close();
    }
  });

  it('a device restarted after the rotation starts from its link record and files (R1 only) and links again', async () => {
    const old = procs.find((p) => p.id === 'console-1')!;
    procs = procs.filter((p) => p !== old);
    earlierTallies.push(...await stopAll([old]));
    const again = startDevice('console-1', 'client', join(dir, 'devices', 'console-1'), configs.get('console-1')!);
    procs.push(again);
    await again.ready;
  });

  it('device-PKI mutual TLS kept working throughout: 0 failed handshakes', async () => {
    const tallies = [...earlierTallies, ...await stopAll(procs)];
    procs = [];
    assert.equal(tallies.length, 4, 'both consoles, each in two runs');
    assert.ok(tallies.reduce((n, t) => n + t.attempted, 0) > 50, `probes ran (${tallies.map((t) => t.attempted).join('+')})`);
    for (const t of tallies) assert.equal(t.failed, 0, t.failures.join('\n'));
    console.log(`      link rotation (resumed run): ${result.seconds.toFixed(1)} s, ${result.restarts} scripted restarts (+1 mid-step), ${result.commands} commands, ${result.acks} acks, ${result.resent} resent; handshakes ${tallies.map((t) => t.attempted).join('+')}, failed 0`);
  });
});
