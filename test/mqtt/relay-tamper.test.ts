/**
 * A hostile relay (PROTOCOL.md "Who can reach whom"; issue 11): a printer
 * that relays for a management client alters, drops, replays and reorders
 * the client's commands and alters its acknowledgements, and speaks for a
 * device that is not behind it. None of it changes the end device's trust
 * store, and each is detected: the device answers E_SIGNATURE, the manager
 * resends what was dropped, refuses the unsigned acknowledgement
 * (ack.forged in the audit trail) and drops the misrouted one. Once the
 * relay behaves, the rotation completes. Real parts: the embedded broker
 * (aedes), the manager's transport and orchestrator, the relay's MQTT
 * session and mutual-TLS service, and the relayed client's runtime.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig, openAgentRuntime, type AgentConfig, type AgentRuntime } from '../../agent/config.ts';
import { healthFilePath, readHealth } from '../../agent/health-file.ts';
import { linkCheck } from '../../agent/selftest/link-check.ts';
import { runSelftest } from '../../agent/selftest/selftest.ts';
import { summarize } from '../../agent/device-record.ts';
import { checkLinkFiles } from '../../agent/link-tls.ts';
import { DeviceLink } from '../../agent/mqtt-link.ts';
import { RelayHub } from '../../agent/relay/relay-hub.ts';
import { relayServerHandler } from '../../agent/relay/relay-server.ts';
import { runDevice, type RunningDevice } from '../../agent/runtime.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { DeviceTlsServer } from '../../agent/tls/device-tls-server.ts';
import { fleetShape, provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';
import { AuditLog } from '../../manager/audit/audit-log.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { EmbeddedBroker } from '../../manager/broker/embedded-broker.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { buildOrchestrator, mqttTransport } from '../../manager/manager.ts';
import type { MqttManagerTransport } from '../../manager/transport/mqtt-transport.ts';
import type { Orchestrator } from '../../manager/rotation/orchestrator.ts';
import { setRoute, topology } from '../../manager/fleet/topology.ts';
import { systemClock } from '../../protocol/clock.ts';
import { commandVerifier } from '../../protocol/command-signature.ts';
import { createLogger } from '../../protocol/log.ts';
import { SCHEDULES } from '../../protocol/steps.ts';
import { relayTopic } from '../../protocol/topics.ts';

type Mode = 'none' | 'alter' | 'drop' | 'alter-ack';

const CLIENT = 'mgmt-client-1';
const RELAY = 'printer-1';

/** Wait until `cond` holds (polling), or fail naming `what`. */
async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('relay: a hostile relay can neither forge, alter, reorder nor replay, and is detected', function () {
  this.timeout(90_000);
  const logger = createLogger({ level: 'error' });
  let dir: string;
  let broker: EmbeddedBroker;
  let db: FleetDb;
  let transport: MqttManagerTransport;
  let orchestrator: Orchestrator;
  let relayRt: AgentRuntime;
  let relayLink: DeviceLink;
  let relayServer: DeviceTlsServer;
  let hub: RelayHub;
  const devices: RunningDevice[] = [];
  let mode: Mode = 'none';
  /** A batch the relay hands out instead of the queue, once. */
  let replayBatch: string[] | null = null;
  /** Every command the relay was handed for the client, as the manager signed it. */
  const seen: string[] = [];
  const events = { errors: [] as { deviceId: string; step: string; code: string }[], resent: [] as { deviceId: string; step: string }[], forged: [] as { deviceId: string; step: string }[], acked: [] as { deviceId: string; step: string }[] };
  let ended!: Promise<void>;
  let resolveEnd!: () => void;
  let relayConfig: AgentConfig;
  let relayPort: number;

  /** The relay, wired by hand so the test can make it misbehave (and restart it). */
  const startRelay = async () => {
    const checked = checkLinkFiles(relayConfig.link!);
    relayRt = await openAgentRuntime(relayConfig, { clock: systemClock, logger, verifySignature: commandVerifier(checked.commandKeys) });
    hub = new RelayHub({
      relayId: RELAY, downstream: [CLIENT], clock: systemClock, logger, offlineAfterMs: 10_000,
      publish: (topic, payload, retain) => relayLink.publishConfirmed(topic, payload, retain),
      tamper: {
        commands: (_id, commands) => {
          if (replayBatch) {
            const batch = replayBatch;
            replayBatch = null;
            return batch;
          }
          for (const c of commands) if (!seen.includes(c)) seen.push(c);
          if (mode === 'drop') return [];
          // Change one character of the signed content: the step's certificate material.
          if (mode === 'alter') return commands.map((c) => c.replace(/MII(.)/, (_m, ch: string) => `MII${ch === 'B' ? 'C' : 'B'}`));
          return commands;
        },
        ack: (_id, ack) => (mode === 'alter-ack' ? ack.replace(/"at":"[^"]+"/, '"at":"2020-01-01T00:00:00.000Z"') : ack),
      },
    });
    relayLink = new DeviceLink({
      url: broker.url, agent: relayRt.agent!, tls: { ca: checked.ca, cert: checked.cert, key: checked.key }, clock: systemClock, logger,
      extra: { filters: hub.filters(), onMessage: (t, p, r) => hub.fromBroker(t, p, r) },
    });
    relayServer = await DeviceTlsServer.start({ agent: relayRt.agent!, keys: relayRt.keys, logger, host: '127.0.0.1', port: relayPort, relay: relayServerHandler(hub, logger) });
    await relayLink.ready();
  };

  /** The relay loses power: no DISCONNECT, its in-memory queue is gone (its broker session stays). */
  const crashRelay = async () => {
    await relayLink.close({ abrupt: true });
    await relayServer.close();
    await relayRt.close();
  };

  const clientStore = async () => {
    const store = new SqliteStateStore(join(dir, 'devices', CLIENT, 'trust-store.db'), {}, { readonly: true });
    try {
      const r = (await store.load())!;
      return { hash: summarize(r).storeHash, lastSeq: r.lastSeq };
    } finally {
      await store.close();
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-relay-tamper-'));
    const now = systemClock.now();
    const pki = await ManagementPki.create({ now });
    broker = await EmbeddedBroker.start({ ca: pki.ca, ...pki.broker, logger, port: 0 });
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Relay Test Root', now });
    db = new FleetDb(join(dir, 'manager.db'));
    const ids = fleetShape(1, 2, 'mgmt-client');
    const ports = await serverPorts(ids);
    const configs = new Map<string, string>();
    for (const [id, role] of ids) {
      configs.set(id, await provisionDevice(dir, id, role, {
        pki, ca, db, brokerUrl: broker.url, ports, naive: false, logger,
        via: id === CLIENT ? RELAY : undefined, relayFor: id === RELAY ? [CLIENT] : undefined, relayIntervalMs: 100,
      }));
    }
    setRoute(db, CLIENT, RELAY);
    assert.equal(topology(db).name, 'server-relay');

    relayConfig = loadAgentConfig(configs.get(RELAY)!);
    relayPort = ports.get(RELAY)!;
    await startRelay();

    transport = mqttTransport({ url: broker.url, pki, logger, reconnectPeriodMs: 100, db });
    await transport.ready();
    ended = new Promise<void>((r) => (resolveEnd = r));
    orchestrator = buildOrchestrator({
      db, transport, authority: ca, logger, pki, audit: new AuditLog(db),
      policy: { ackTimeoutMs: 1_200, sweepIntervalMs: 50, backoffBaseMs: 100, backoffMaxMs: 300, maxAttempts: 60 },
      events: {
        complete: () => resolveEnd(), failed: () => resolveEnd(),
        acked: (row) => events.acked.push({ deviceId: row.deviceId, step: row.step }),
        ackError: (row, code) => events.errors.push({ deviceId: row.deviceId, step: row.step, code }),
        resent: (row) => events.resent.push({ deviceId: row.deviceId, step: row.step }),
        forgedAck: (ack) => events.forged.push({ deviceId: ack.deviceId, step: ack.step }),
      },
    });
    for (const id of [CLIENT, 'mgmt-client-2']) {
      const d = await runDevice(loadAgentConfig(configs.get(id)!), { clock: systemClock, logger });
      devices.push(d);
      assert.equal(await d.linked, true, `${id} linked`);
    }
  });

  after(async () => {
    orchestrator?.close();
    for (const d of devices) await d.stop();
    await hub?.close();
    await relayLink?.close();
    await relayServer?.close();
    await relayRt?.close();
    await transport?.close();
    await broker?.close();
    db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an altered command changes nothing and the device answers E_SIGNATURE; a dropped one is resent; an altered ack is refused as forged; then the rotation completes', async () => {
    const before = await clientStore();
    mode = 'alter';
    await orchestrator.start({ schedule: SCHEDULES['six-step']! });
    await until(() => events.errors.some((e) => e.deviceId === CLIENT), 'the client\'s error acknowledgement');
    const err = events.errors.find((e) => e.deviceId === CLIENT)!;
    assert.equal(err.code, 'E_SIGNATURE', `the end device refused the altered ${err.step} (${err.code})`);
    assert.deepEqual(await clientStore(), before, 'the altered command changed nothing on the client');

    mode = 'drop';
    const resentBefore = events.resent.filter((r) => r.deviceId === CLIENT).length;
    await until(() => events.resent.filter((r) => r.deviceId === CLIENT).length > resentBefore, 'a resend of the dropped command');
    assert.deepEqual(await clientStore(), before, 'dropped commands changed nothing');

    mode = 'alter-ack';
    await until(() => events.forged.some((f) => f.deviceId === CLIENT), 'an altered acknowledgement refused');
    const applied = await clientStore();
    assert.ok(applied.lastSeq > before.lastSeq, 'the device applied the step whose acknowledgement the relay altered');
    assert.ok(!events.acked.some((a) => a.deviceId === CLIENT && a.step === events.forged.find((f) => f.deviceId === CLIENT)!.step), 'the altered acknowledgement did not count');
    const audit = db.db.prepare("SELECT COUNT(*) AS n FROM audit WHERE action = 'ack.forged' AND device_id = ?").get(CLIENT) as { n: number };
    assert.ok(audit.n >= 1, 'ack.forged is in the audit trail');

    mode = 'none';
    await ended;
    const rot = db.rotations()[0]!;
    assert.equal(rot.status, 'complete', rot.error ?? '');
    for (const step of ['P2', 'P3', 'P6']) assert.ok(events.acked.some((a) => a.deviceId === CLIENT && a.step === step), `${CLIENT} acknowledged ${step} through the relay`);
  });

  it('replayed and reordered old commands change nothing on the end device', async () => {
    const before = await clientStore();
    assert.ok(seen.length >= 3, `the relay saw the client's commands (${seen.length})`);
    // The client's next poll gets every old command again, newest first.
    replayBatch = [...seen].reverse().slice(0, 8);
    await until(() => replayBatch === null, 'the replayed batch handed out');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await clientStore(), before, 'replayed and reordered commands changed nothing');
  });

  it('the relayed client\'s self-test reports its channel through the relay', async () => {
    const config = loadAgentConfig(join(dir, 'devices', CLIENT, 'agent.json'));
    const check = await linkCheck(config, null, readHealth(healthFilePath(config), new Date()), healthFilePath(config), 2_000);
    assert.equal(check.status, 'ok', check.message);
    assert.match(check.message, /polls relay printer-1 at 127\.0\.0\.1:\d+/);
  });

  it('a relay that loses power mid-rotation loses its queue, and the rotation still completes', async () => {
    ended = new Promise<void>((r) => (resolveEnd = r));
    const acked = events.acked.length;
    const id = await orchestrator.start({ schedule: SCHEDULES['six-step']! });
    await until(() => events.acked.slice(acked).some((a) => a.deviceId === CLIENT && a.step === 'P2'), 'the client\'s P2 of the second rotation');
    await crashRelay();
    await new Promise((r) => setTimeout(r, 1_500));
    await startRelay();
    await ended;
    const rot = db.rotation(id)!;
    assert.equal(rot.status, 'complete', rot.error ?? '');
    for (const step of ['P3', 'P6']) assert.ok(events.acked.slice(acked).some((a) => a.deviceId === CLIENT && a.step === step), `${CLIENT} acknowledged ${step} after the relay came back`);
  });

  it('a relay that speaks for a device not routed through it is dropped by the manager', async () => {
    const misrouted = transport.stats.misrouted;
    const fake = JSON.stringify({ v: 1, kind: 'state', deviceId: 'mgmt-client-2', status: 'offline' });
    await relayLink.publishConfirmed(relayTopic(RELAY, 'mgmt-client-2', 'state'), fake, false);
    await until(() => transport.stats.misrouted > misrouted, 'the misrouted message counted');
    assert.notEqual(transport.devices().get('mgmt-client-2')?.status, 'offline', 'the direct device was not reported offline by the relay');
  });

  it('with its agent stopped, the relayed client\'s self-test handshakes with the relay, and says so when the relay is down', async () => {
    const loaded = loadAgentConfig(join(dir, 'devices', CLIENT, 'agent.json'));
    assert.ok(loaded.probe?.targets.some((t) => t.serverId === RELAY), 'this client also probes its relay as one of its servers');
    // One handshake with the relay, not two, when it is a probe target too.
    await devices.shift()!.stop();
    assert.equal((await runSelftest(loaded, { timeoutMs: 3_000 })).checks.filter((c) => c.name === `peer ${RELAY}`).length, 1);
    // A client that probes no servers still has its relay checked.
    const config: AgentConfig = { ...loaded, probe: undefined };
    const up = await runSelftest(config, { timeoutMs: 3_000 });
    const link = up.checks.find((c) => c.name === 'link')!;
    assert.equal(link.status, 'skipped', link.message);
    assert.match(link.message, /no agent is running \(see the agent check\); the peer check "peer printer-1" below is a handshake with the relay/);
    assert.equal(up.checks.find((c) => c.name === 'agent')!.code, 'E_AGENT_NOT_RUNNING');
    const peer = up.checks.find((c) => c.name === `peer ${RELAY}`);
    assert.ok(peer, `a peer check of the relay: ${up.checks.map((c) => c.name).join(', ')}`);
    assert.equal(peer.status, 'ok', peer.message);
    await crashRelay();
    try {
      const down = await runSelftest(config, { timeoutMs: 3_000 });
      const failed = down.checks.find((c) => c.name === `peer ${RELAY}`)!;
      assert.equal(failed.status, 'fail', failed.message);
      assert.match(failed.message, new RegExp(`peer ${RELAY} \\(127\\.0\\.0\\.1:${relayPort}\\)`));
    } finally {
      await startRelay();
    }
  });
});
