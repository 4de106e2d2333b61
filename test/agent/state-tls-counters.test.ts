import { strict as assert } from 'node:assert';
import { connect } from 'mqtt';
import { assertDeviceState, type DeviceState } from '../../protocol/messages/device-state.ts';
import { deviceTopic } from '../../protocol/topics.ts';
import { SelftestFleet, selftestFleetLog } from '../support/selftest-fleet.ts';

/** Read the retained state messages of `ids` from the broker, as the manager would. */
async function retainedStates(fleet: SelftestFleet, ids: string[]): Promise<Map<string, DeviceState>> {
  const client = connect(fleet.broker.url, { ca: fleet.pki.ca, ...fleet.pki.manager, rejectUnauthorized: true, clean: true, protocolVersion: 4, reconnectPeriod: 0 });
  const got = new Map<string, DeviceState>();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`retained states of ${ids.join(', ')} not received`)), 5_000);
      client.on('message', (topic, payload, packet) => {
        if (!packet.retain) return;
        const msg: unknown = JSON.parse(payload.toString());
        assertDeviceState(msg);
        got.set(msg.deviceId, msg);
        if (got.size === ids.length) { clearTimeout(timer); resolve(); }
      });
      client.once('error', reject);
      client.once('connect', () => client.subscribe(ids.map((id) => deviceTopic(id, 'state')), { qos: 1 }));
    });
  } finally {
    await client.endAsync();
  }
  return got;
}

/** Live (not retained) state messages of `id` during `ms`. */
async function liveStates(fleet: SelftestFleet, id: string, ms: number): Promise<DeviceState[]> {
  const client = connect(fleet.broker.url, { ca: fleet.pki.ca, ...fleet.pki.manager, rejectUnauthorized: true, clean: true, protocolVersion: 4, reconnectPeriod: 0 });
  const seen: DeviceState[] = [];
  client.on('message', (_topic, payload, packet) => {
    if (packet.retain) return;
    const msg: unknown = JSON.parse(payload.toString());
    assertDeviceState(msg);
    seen.push(msg);
  });
  await new Promise<void>((resolve, reject) => {
    client.once('error', reject);
    client.once('connect', () => client.subscribe(deviceTopic(id, 'state'), { qos: 1 }, () => resolve()));
  });
  await new Promise((r) => setTimeout(r, ms));
  await client.endAsync();
  return seen;
}

describe('device state message: tls handshake counters (real Mosquitto, live agents)', function () {
  this.timeout(60_000);
  let fleet: SelftestFleet | null = null;
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.error(selftestFleetLog.slice(-30).join('\n'));
    await fleet?.close();
    fleet = null;
  });

  it('the retained state carries counters that grow while the client probes the server, republished at most every link.stateIntervalMs', async () => {
    const f = (fleet = await SelftestFleet.create());
    await f.provision('printer-1', 'server');
    await f.provision('console-1', 'client', { probe: { targets: [f.target('printer-1')], intervalMs: 20 } });
    await f.start('printer-1');
    const client = await f.start('console-1');
    await new Promise((r) => setTimeout(r, 600));
    const first = await retainedStates(f, ['console-1', 'printer-1']);
    await new Promise((r) => setTimeout(r, 800));
    const second = await retainedStates(f, ['console-1', 'printer-1']);
    const c1 = first.get('console-1')!.tls!;
    const c2 = second.get('console-1')!.tls!;
    assert.ok(c1 && c2, 'the client\'s state carries tls counters');
    assert.equal(second.get('console-1')!.status, 'online');
    assert.ok(c1.attempts > 0, JSON.stringify(c1));
    assert.ok(c2.attempts > c1.attempts, `attempts grew: ${c1.attempts} -> ${c2.attempts}`);
    assert.equal(c2.failed, 0);
    assert.equal(c2.fallbacks, 0);
    assert.ok(c2.attempts - c2.ok - c2.failed <= 1, `every attempt but the one in flight succeeded: ${JSON.stringify(c2)}`);
    assert.equal(c2.since, c1.since, 'cumulative since the agent started');
    // The live counter is ahead of the retained one by at most one interval's worth.
    assert.ok(client.tlsCounters()!.attempts >= c2.attempts);
    const s1 = first.get('printer-1')!.tls!;
    const s2 = second.get('printer-1')!.tls!;
    assert.ok(s2.ok > s1.ok, `the server counts accepted handshakes: ${s1.ok} -> ${s2.ok}`);
    assert.equal(s2.failed, 0);
    assert.equal(s2.unreachable, 0, 'this agent reports peers that did not answer apart');
    assert.equal(c2.unreachable, 0);
    assert.equal(s2.fallbacks, 0);
    // Republished when the counters change, but at most every link.stateIntervalMs (200 ms here).
    const live = await liveStates(f, 'console-1', 1_000);
    assert.ok(live.length >= 3 && live.length <= 6, `${live.length} state messages in 1 s`);
    const handshakes = live[live.length - 1]!.tls!.attempts - live[0]!.tls!.attempts;
    assert.ok(handshakes > live.length * 2, `${handshakes} handshakes reported by ${live.length} messages`);
  });

  it('the schema keeps the field optional and strict (unreachable optional: older agents do not send it)', () => {
    const base = { v: 1, kind: 'state', deviceId: 'd1', status: 'online' } as const;
    const tls = { attempts: 3, ok: 2, failed: 1, fallbacks: 0, since: '2026-12-02T00:00:00.000Z' };
    assertDeviceState(base);
    assertDeviceState({ ...base, tls });
    assertDeviceState({ ...base, tls: { ...tls, unreachable: 4 } });
    for (const bad of [{ ...tls, extra: 1 }, { ...tls, ok: -1 }, { ...tls, failed: 1.5 }, { ...tls, unreachable: -1 }, { attempts: 1, ok: 1, failed: 0, since: tls.since }, { ...tls, since: 'yesterday' }]) {
      assert.throws(() => assertDeviceState({ ...base, tls: bad }), /E_SCHEMA/, JSON.stringify(bad));
    }
  });
});
