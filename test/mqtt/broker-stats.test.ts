import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { ManualClock, type Timers } from '../../protocol/clock.ts';
import { SIX_STEP } from '../../protocol/steps.ts';
import { MANAGER_IDENTITY, mayPublish, mayReceive, maySubscribe, mosquittoAcl, MQTT_PROTOCOL_VERSION } from '../../protocol/topics.ts';
import { BrokerMonitor, NO_SYS_MESSAGE, type BrokerSample } from '../../manager/broker/broker-monitor.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { MqttManagerTransport, type SysSubscription } from '../../manager/transport/mqtt-transport.ts';
import { Mosquitto } from '../../demo/mosquitto.ts';
import { mqttFleetLog, type MqttFleet } from '../../demo/mqtt-fleet.ts';
import { createLogger } from '../../protocol/log.ts';
import { mqttFleets } from '../support/mqtt-fleets.ts';

/** Timers that fire only when the test moves the clock. */
class ManualTimers implements Timers {
  private next = 1;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  constructor(private readonly clock: ManualClock) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.due.set(id, { at: this.clock.now().getTime() + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.due.delete(h as number);
  }
  /** Move the clock by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.clock.now().getTime() + ms;
    for (;;) {
      const [id, t] = [...this.due].sort((a, b) => a[1].at - b[1].at)[0] ?? [];
      if (id === undefined || !t || t.at > end) break;
      this.due.delete(id);
      this.clock.set(new Date(Math.max(t.at, this.clock.now().getTime())));
      t.fn();
    }
    this.clock.set(new Date(end));
  }
}

/** A `sys` event source like the transport, for feeding recorded Mosquitto bursts. */
class FakeSource extends EventEmitter<{ sys: [string, string, boolean] }> {
  sysSubscription: SysSubscription = 'granted';
  burst(values: Record<string, string | number>, retained = false): void {
    for (const [k, v] of Object.entries(values)) this.emit('sys', `$SYS/broker/${k}`, String(v), retained);
  }
}

const until = async (what: string, pred: () => boolean, timeoutMs = 8_000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('broker statistics: BrokerMonitor on recorded Mosquitto bursts', () => {
  const start = new Date('2026-01-01T00:00:00Z');
  let clock: ManualClock;
  let timers: ManualTimers;
  let src: FakeSource;
  let monitor: BrokerMonitor;
  beforeEach(() => {
    clock = new ManualClock(start);
    timers = new ManualTimers(clock);
    src = new FakeSource();
    monitor = new BrokerMonitor(src, { intervalMs: 1_000, clock, timers, historySize: 4 });
  });
  afterEach(() => monitor.close());

  // What Mosquitto 2.0.11 sends on subscription (retained) and then every sys_interval + 1 s (changed values only).
  const retained = {
    version: 'mosquitto version 2.0.11', uptime: '40 seconds', 'clients/connected': 3, 'messages/stored': 35, 'store/messages/count': 35,
    'publish/messages/dropped': 2, 'publish/messages/received': 100, 'publish/messages/sent': 200, 'bytes/received': 8000, 'bytes/sent': 9000,
    'load/publish/received/1min': '120.00', 'load/publish/sent/1min': '60.00',
  };

  it('groups a burst into one sample; the retained burst gives the broker\'s one-minute averages, live bursts the counter rates', () => {
    const samples: BrokerSample[] = [];
    monitor.on('sample', (s) => samples.push(s));
    src.burst(retained, true);
    assert.equal(samples.length, 0, 'not complete while messages may still come');
    timers.advance(300);
    assert.equal(samples.length, 1);
    assert.deepEqual(samples[0], {
      at: start.toISOString(), source: 'mosquitto', version: 'mosquitto version 2.0.11', uptimeS: 40, clientsConnected: 3,
      messagesReceived: 100, messagesSent: 200, dropped: 2, stored: 35, bytesReceived: 8000, bytesSent: 9000,
      msgInPerS: 2, msgOutPerS: 1,
    });
    timers.advance(1_700);
    src.burst({ uptime: '42 seconds', 'publish/messages/received': 150, 'publish/messages/sent': 260 });
    timers.advance(2_000);
    // The retained values' age is unknown: still the broker's averages.
    assert.equal(samples[1]!.msgInPerS, 2);
    src.burst({ uptime: '44 seconds', 'publish/messages/received': 190, 'clients/connected': 4 });
    timers.advance(2_000);
    const s = samples[2]!;
    assert.equal(s.msgInPerS, 20, '40 PUBLISH in 2 s');
    assert.equal(s.msgOutPerS, 0, 'unchanged counters are not republished: 0 per second, not unknown');
    assert.equal(s.clientsConnected, 4);
    assert.equal(s.dropped, 2, 'values not in this burst carry over');
    assert.equal(monitor.latest(), s);
    assert.equal(monitor.stale, false);
  });

  it('a broker restart or a counter that went back gives no counter rate and keeps nothing of the old broker', () => {
    src.burst(retained, true);
    timers.advance(2_000);
    src.burst({ uptime: '42 seconds', 'publish/messages/received': 150 });
    timers.advance(2_000);
    src.burst({ uptime: '44 seconds', 'publish/messages/received': 140 }); // went back without a restart
    timers.advance(2_000);
    assert.equal(monitor.latest()!.msgInPerS, 2, 'fallback to the broker\'s average, never negative');
    src.burst({ uptime: '2 seconds', 'clients/connected': 1, 'publish/messages/received': 5 }); // restarted, live
    timers.advance(2_000);
    const s = monitor.latest()!;
    assert.equal(s.uptimeS, 2);
    assert.equal(s.version, null, 'the old broker\'s version is not carried over');
    assert.equal(s.dropped, null);
    assert.equal(s.msgInPerS, null, 'no rate and no average from the new broker yet');
    src.burst({ uptime: '4 seconds', 'publish/messages/received': 25 });
    timers.advance(2_000);
    assert.equal(monitor.latest()!.msgInPerS, 10);
    assert.equal(monitor.history().length, 4, 'bounded history');
    assert.deepEqual(monitor.history().map((h) => h.uptimeS), [42, 44, 2, 4]);
  });

  it('retained messages that come twice (two overlapping subscriptions) still make one sample with every value', () => {
    const samples: BrokerSample[] = [];
    monitor.on('sample', (x) => samples.push(x));
    for (const [k, v] of Object.entries(retained)) {
      src.emit('sys', `$SYS/broker/${k}`, String(v), true);
      src.emit('sys', `$SYS/broker/${k}`, String(v), true);
    }
    timers.advance(300);
    assert.equal(samples.length, 1);
    assert.equal(samples[0]!.version, 'mosquitto version 2.0.11');
    assert.equal(samples[0]!.bytesSent, 9000);
  });

  it('an absent statistic is null, never 0 (the embedded broker knows no dropped or stored count)', () => {
    src.burst({ version: 'aedes version 1.2.0 (trustroll embedded broker)', uptime: '1 seconds', 'clients/connected': 2, 'publish/messages/received': 0, 'publish/messages/sent': 0 }, true);
    timers.advance(300);
    const s = monitor.latest()!;
    assert.equal(s.source, 'embedded');
    assert.equal(s.dropped, null);
    assert.equal(s.stored, null);
    assert.equal(s.bytesSent, null);
    assert.equal(s.msgInPerS, null);
  });

  it('no statistic for 3 intervals makes it stale with the reason; the next one clears it', () => {
    const events: boolean[] = [];
    monitor.on('stale', (s) => events.push(s));
    timers.advance(2_900);
    assert.equal(monitor.stale, false);
    timers.advance(200);
    assert.equal(monitor.stale, true);
    assert.equal(monitor.staleReason, NO_SYS_MESSAGE);
    assert.deepEqual(events, [true]);
    src.burst({ uptime: '1 seconds' });
    assert.equal(monitor.stale, false);
    assert.equal(monitor.staleReason, null);
    timers.advance(3_100);
    assert.match(monitor.staleReason ?? '', /no \$SYS statistics from the broker for 3 s/);
    assert.deepEqual(events, [true, false, true]);
    src.sysSubscription = 'refused';
    assert.match(monitor.staleReason ?? '', /refused the manager's \$SYS\/# subscription/);
  });

  it('ignores aedes\' own $SYS/<id>/... tree and says so when nothing else comes', () => {
    src.emit('sys', '$SYS/8f1c/new/clients', 'cli-1', false);
    timers.advance(3_100);
    assert.equal(monitor.latest(), null);
    assert.match(monitor.staleReason ?? '', /does not read/);
  });
});

describe('broker statistics: access rules', () => {
  it('only the manager may subscribe to and receive $SYS; nobody publishes there', () => {
    for (const f of ['$SYS/#', '$SYS/broker/uptime', '$SYS/+/heartbeat']) {
      assert.ok(maySubscribe(MANAGER_IDENTITY, f), f);
      assert.ok(!maySubscribe('cli-1', f), f);
    }
    assert.ok(mayReceive(MANAGER_IDENTITY, '$SYS/broker/uptime'));
    assert.ok(!mayReceive('cli-1', '$SYS/broker/uptime') && !mayReceive('cli-1', '$SYS/8f1c/new/clients'));
    assert.ok(!mayPublish(MANAGER_IDENTITY, '$SYS/broker/uptime') && !mayPublish('cli-1', '$SYS/broker/uptime'));
    const acl = mosquittoAcl();
    const managerBlock = acl.split('\n\n')[0]!;
    assert.match(managerBlock, /^user trustroll-manager$/m);
    assert.match(managerBlock, /^topic read \$SYS\/#$/m);
    assert.equal(acl.match(/\$SYS/g)?.length, 2, 'one comment and the manager\'s line; no pattern line gives devices $SYS');
  });

  it('the Mosquitto listener snippet of `mgmt init` turns the statistics on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-sys-'));
    try {
      (await ManagementPki.create({ now: new Date() })).save(dir);
      assert.match(readFileSync(join(dir, 'mosquitto-listener.conf'), 'utf8'), /^sys_interval 10$/m);
      assert.match(readFileSync(join(dir, 'acl'), 'utf8'), /^topic read \$SYS\/#$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A raw device connection that tries to read $SYS; returns the SUBACK codes and what it received. */
async function sysSnoop(fleet: MqttFleet, id: string): Promise<{ client: MqttClient; granted: number[]; got: string[] }> {
  const client = await connectAsync(fleet.url, { ca: fleet.pki.ca, ...fleet.pki.device(id), clientId: id, clean: true, protocolVersion: MQTT_PROTOCOL_VERSION, reconnectPeriod: 0 });
  const got: string[] = [];
  client.on('message', (topic) => got.push(topic));
  const filters = ['$SYS/#', '$SYS/broker/uptime', '$SYS/+/new/clients', '#'];
  let granted: number[];
  try {
    granted = (await client.subscribeAsync(filters, { qos: 0 })).map((g) => g.qos);
  } catch (err) {
    granted = (err as { packet?: { granted?: number[] } }).packet?.granted ?? [];
  }
  return { client, granted, got };
}

for (const broker of ['mosquitto', 'embedded'] as const) {
  describe(`broker statistics over ${broker}`, function () {
    this.timeout(30_000);
    const fleets = mqttFleets(80);
    // Mosquitto's sys_interval is whole seconds (a burst every 2 s at 1); the embedded broker's is any interval.
    const intervalMs = broker === 'mosquitto' ? 1_000 : 200;

    it('the monitor shows the connected clients, growing counters and non-negative rates through a rotation; a device reads no $SYS', async () => {
      const fleet = await fleets.create({ servers: 1, clients: 2, broker, brokerSysIntervalMs: intervalMs });
      let thrown = 0;
      fleet.transport.on('sys', () => { thrown++; throw new Error('a faulty dashboard listener'); });
      const monitor = new BrokerMonitor(fleet.transport, { intervalMs });
      const sysTopics = new Set<string>();
      fleet.transport.on('sys', (topic) => sysTopics.add(topic));
      const snoop = await sysSnoop(fleet, 'srv-9');
      try {
        if (broker === 'embedded') assert.deepEqual(snoop.granted, [0x80, 0x80, 0x80, 0x80], 'the embedded broker refuses a device every $SYS filter');
        // Mosquitto 2.0's acl_file does not check SUBSCRIBE; its read ACL holds at delivery (asserted at the end).
        const clients = 1 + fleet.links.size + 1; // manager, devices, the snooping device
        await until('a sample with every client', () => monitor.latest()?.clientsConnected === clients);
        const before = monitor.latest()!;
        assert.equal(before.source, broker);
        assert.match(before.version ?? '', broker === 'mosquitto' ? /^mosquitto version 2\./ : /^aedes version \d/);
        assert.ok((before.uptimeS ?? -1) >= 0);
        if (broker === 'mosquitto') {
          assert.equal(typeof before.dropped, 'number');
          assert.equal(typeof before.stored, 'number');
        } else {
          assert.equal(before.dropped, null, 'the embedded broker cannot know it: absent, not 0');
          assert.equal(before.stored, null);
        }
        const historyBefore = monitor.history().length;

        const rotation = await fleet.rotate(SIX_STEP);
        assert.equal(rotation.status, 'complete', rotation.error ?? '');
        const commands = 3 + 2 * 3; // P1 P4 P5 to the server, P2 P3 P6 to each client
        await until('a sample after the rotation', () => (monitor.latest()?.messagesReceived ?? 0) >= (before.messagesReceived ?? 0) + commands + commands);
        const after = monitor.latest()!;
        // The broker received every command and every ack (plus desired and state), and sent at least each to its reader.
        assert.ok(after.messagesReceived! - before.messagesReceived! >= 2 * commands, JSON.stringify({ before, after }));
        await until('the sent counter to pass the rotation', () => monitor.latest()!.messagesSent! - before.messagesSent! >= 2 * commands);
        assert.ok(monitor.latest()!.bytesReceived! > before.bytesReceived!);
        assert.ok(monitor.latest()!.bytesSent! > before.bytesSent!);
        const since = monitor.history().filter((s) => s.at > before.at);
        for (const s of since) {
          for (const r of [s.msgInPerS, s.msgOutPerS]) assert.ok(typeof r === 'number' && Number.isFinite(r) && r >= 0, `rate ${r} at ${s.at}`);
        }
        assert.ok(since.some((s) => s.msgInPerS! > 0), 'the rotation shows as incoming messages per second');
        assert.ok(monitor.history().length > historyBefore, 'the history grows');
        assert.equal(monitor.stale, false);

        assert.equal(fleet.transport.stats.sysSubscription, 'granted');
        assert.ok(fleet.transport.stats.sysMessages > 0);
        assert.equal(fleet.transport.stats.acksDropped, 0, '$SYS messages are never counted as dropped acks');
        assert.ok(thrown > 0);
        assert.equal(fleet.transport.stats.connects, 1, 'a failing $SYS listener never made the transport reconnect');
        assert.ok([...sysTopics].every((t) => t.startsWith('$SYS/broker/')), `only the broker tree reaches the manager: ${[...sysTopics].filter((t) => !t.startsWith('$SYS/broker/'))}`);
        assert.deepEqual(snoop.got, [], 'the device received no $SYS message');
      } finally {
        monitor.close();
        await snoop.client.endAsync(true);
      }
    });
  });
}

describe('broker statistics when the broker gives none', function () {
  this.timeout(30_000);
  const fleets = mqttFleets(80);

  it('Mosquitto with sys_interval 0: the monitor turns stale with the reason, the rotation runs', async () => {
    const fleet = await fleets.create({ servers: 1, clients: 1, broker: 'mosquitto', brokerSysIntervalMs: 0 });
    const monitor = new BrokerMonitor(fleet.transport, { intervalMs: 300 });
    const stale = new Promise<boolean>((r) => monitor.once('stale', r));
    try {
      const rotation = await fleet.rotate(SIX_STEP);
      assert.equal(rotation.status, 'complete', rotation.error ?? '');
      assert.equal(await stale, true);
      assert.equal(monitor.stale, true);
      assert.equal(monitor.latest(), null, 'no numbers, not zeros');
      assert.equal(monitor.staleReason, NO_SYS_MESSAGE);
    } finally {
      monitor.close();
    }
  });

  it('a broker that refuses the $SYS subscription: one warning, the monitor says so at once, acknowledgements flow', async () => {
    const from = mqttFleetLog.length;
    const fleet = await fleets.create({ servers: 1, clients: 2, broker: 'embedded', brokerSysIntervalMs: 0 });
    const monitor = new BrokerMonitor(fleet.transport, { intervalMs: 200 });
    try {
      await until('the refusal', () => fleet.transport.stats.sysSubscription === 'refused');
      assert.equal(monitor.stale, true);
      assert.match(monitor.staleReason ?? '', /refused the manager's \$SYS\/# subscription/);
      const rotation = await fleet.rotate(SIX_STEP);
      assert.equal(rotation.status, 'complete', rotation.error ?? '');
      assert.equal(fleet.transport.stats.acksReceived, 9);
      assert.equal(fleet.transport.stats.acksDropped, 0);
      assert.ok(fleet.transport.connected);
      const warnings = mqttFleetLog.slice(from).filter((l) => l.includes('refused the $SYS/# subscription'));
      assert.equal(warnings.length, 1, warnings.join('\n'));
    } finally {
      monitor.close();
    }
  });

  it('Mosquitto whose ACL lacks the $SYS line: the transport connects, the monitor turns stale', async () => {
    const pki = await ManagementPki.create({ now: new Date() });
    const acl = mosquittoAcl().split('\n').filter((l) => !l.includes('$SYS')).join('\n');
    const mosquitto = await Mosquitto.start(pki, { sysIntervalS: 1, acl });
    let transport: MqttManagerTransport | undefined;
    try {
      transport = await MqttManagerTransport.connect({ url: mosquitto.url, tls: { ca: pki.ca, ...pki.manager }, logger: createLogger({ level: 'error', sink: () => undefined }) });
      // The retained statistics would arrive on subscription; 3 x 300 ms without them is enough.
      const monitor = new BrokerMonitor(transport, { intervalMs: 300 });
      await until('stale', () => monitor.stale, 6_000);
      monitor.close();
      assert.equal(transport.stats.sysMessages, 0, 'Mosquitto grants the subscription and delivers nothing');
      assert.ok(transport.connected);
      assert.equal(monitor.staleReason, NO_SYS_MESSAGE);
    } finally {
      await transport?.close();
      await mosquitto.close();
    }
  });
});
