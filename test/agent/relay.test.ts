/**
 * The relay's parts on their own: configuration rules a schema cannot
 * express, and the hub's queue (commands kept in sequence order until the
 * device's acknowledgement is on the broker; nothing for a device not
 * behind it; an acknowledgement naming another device refused).
 */
import assert from 'node:assert/strict';
import { checkAgentConfig } from '../../agent/config.ts';
import { RelayHub } from '../../agent/relay/relay-hub.ts';
import { parseRelayReply, parseRelayRequest, relayLine } from '../../agent/relay/wire.ts';
import { systemClock } from '../../protocol/clock.ts';
import { silentLogger } from '../../protocol/log.ts';
import { relayTopic } from '../../protocol/topics.ts';

const base = { hal: { keys: { backend: 'file', dir: '/k' }, records: { backend: 'file', dir: '/r' } }, store: { kind: 'sqlite', path: '/s.db' } };
const link = { url: 'mqtts://b:8883', ca: 'ca.pem', cert: 'd.pem', key: 'd.key', commandKeys: { k: 'k.pem' } };
const cmd = (seq: number, id = 'cli-1') => JSON.stringify({ v: 1, kind: 'cmd', deviceId: id, seq });

describe('relay configuration', () => {
  const bad = (c: object, re: RegExp) => assert.throws(() => checkAgentConfig({ ...base, ...c }), (e: Error & { code?: string }) => e.code === 'E_AGENT_CONFIG' && re.test(e.message));

  it('accepts a relayed client, a relayed server, a server relay and a client relay', () => {
    checkAgentConfig({ ...base, deviceId: 'cli-1', role: 'client', via: { relay: 'prn-1', host: '10.0.0.5', port: 8443, commandKeys: { k: 'k.pem' } } });
    checkAgentConfig({ ...base, deviceId: 'prn-2', role: 'server', tls: { host: '0.0.0.0', port: 8443 }, via: { relay: 'cli-2', commandKeys: { k: 'k.pem' } } });
    checkAgentConfig({ ...base, deviceId: 'prn-1', role: 'server', tls: { host: '0.0.0.0', port: 8443 }, link, relay: { for: ['cli-1'] } });
    checkAgentConfig({ ...base, deviceId: 'cli-2', role: 'client', link, relay: { for: ['prn-2'] }, probe: { targets: [{ host: 'p2', port: 8443, serverId: 'prn-2' }], intervalMs: 1000 } });
  });

  it('names the setting to fix', () => {
    bad({ deviceId: 'cli-1', role: 'client', link, via: { relay: 'prn-1', host: 'h', port: 1, commandKeys: { k: 'k' } } }, /"via".*not both/);
    bad({ deviceId: 'cli-1', role: 'client', via: { relay: 'prn-1', commandKeys: { k: 'k' } } }, /"via".*host/);
    bad({ deviceId: 'cli-1', role: 'client', via: { relay: 'cli-1', host: 'h', port: 1, commandKeys: { k: 'k' } } }, /"via.relay"/);
    bad({ deviceId: 'prn-2', role: 'server', via: { relay: 'cli-2', commandKeys: { k: 'k' } } }, /"tls"/);
    bad({ deviceId: 'cli-2', role: 'client', link, relay: { for: ['prn-2'] } }, /"relay.for".*prn-2/);
    bad({ deviceId: 'prn-1', role: 'server', tls: { host: 'h', port: 1 }, link, relay: { for: ['prn-1'] } }, /"relay.for"/);
    bad({ deviceId: 'prn-1', role: 'server', tls: { host: 'h', port: 1 }, link, relay: { for: [] } }, /"relay.for"/);
  });
});

describe('relay hub and wire', () => {
  const published: { topic: string; payload: string; retain: boolean }[] = [];
  const hub = () => new RelayHub({ relayId: 'prn-1', downstream: ['cli-1'], clock: systemClock, logger: silentLogger, offlineAfterMs: 60_000, publish: async (topic, payload, retain) => { published.push({ topic, payload, retain }); } });
  afterEach(() => { published.length = 0; });

  it('keeps commands in sequence order until acknowledged; a resend replaces its copy', async () => {
    const h = hub();
    h.fromBroker(relayTopic('prn-1', 'cli-1', 'cmd'), Buffer.from(cmd(7)), false);
    h.fromBroker(relayTopic('prn-1', 'cli-1', 'cmd'), Buffer.from(cmd(5)), false);
    h.fromBroker(relayTopic('prn-1', 'cli-1', 'cmd'), Buffer.from(cmd(5)), false);
    assert.deepEqual(h.pending('cli-1').commands, [cmd(5), cmd(7)]);
    assert.deepEqual(h.pending('cli-1').commands, [cmd(5), cmd(7)], 'handed out again until acknowledged');
    await h.deliverAck('cli-1', JSON.stringify({ deviceId: 'cli-1', seq: 5, ok: true }));
    assert.deepEqual(h.pending('cli-1').commands, [cmd(7)]);
    assert.deepEqual(published.map((p) => p.topic), [relayTopic('prn-1', 'cli-1', 'ack')]);
    await h.close();
  });

  it('refuses a device not behind it and an acknowledgement naming another device', async () => {
    const h = hub();
    h.fromBroker(relayTopic('prn-1', 'cli-9', 'cmd'), Buffer.from(cmd(1, 'cli-9')), false);
    h.fromBroker(relayTopic('prn-2', 'cli-1', 'cmd'), Buffer.from(cmd(1)), false);
    assert.equal(h.stats.refused, 2);
    assert.deepEqual(h.pending('cli-1').commands, []);
    assert.throws(() => h.pending('cli-9'), { code: 'E_AGENT_RELAY' });
    await assert.rejects(h.deliverAck('cli-1', JSON.stringify({ deviceId: 'cli-2', seq: 1 })), { code: 'E_AGENT_RELAY' });
    await assert.rejects(h.deliverState('cli-1', JSON.stringify({ deviceId: 'cli-2' })), { code: 'E_AGENT_RELAY' });
    assert.equal(published.length, 0);
    await h.close();
  });

  it('publishes a device\'s state retained, only when it changed', async () => {
    const h = hub();
    const state = (at: string, lastSeq: number) => JSON.stringify({ v: 1, kind: 'state', deviceId: 'cli-1', status: 'online', lastSeq, at });
    await h.deliverState('cli-1', state('2026-01-01T00:00:00.000Z', 1));
    await h.deliverState('cli-1', state('2026-01-01T00:00:05.000Z', 1));
    await h.deliverState('cli-1', state('2026-01-01T00:00:09.000Z', 2));
    assert.equal(published.length, 2);
    assert.ok(published.every((p) => p.retain && p.topic === relayTopic('prn-1', 'cli-1', 'state')));
    await h.close();
    assert.match(published.at(-1)!.payload, /"status":"offline"/, 'a stopping relay reports its devices offline');
  });

  it('wire: parses what it formats and refuses anything else', () => {
    const line = relayLine({ t: 'push', commands: [cmd(1)], desired: null });
    assert.deepEqual(parseRelayRequest(line.slice(6).trim()), { t: 'push', commands: [cmd(1)], desired: null });
    assert.equal(parseRelayRequest('{"t":"push","commands":"x","desired":null}'), null);
    assert.equal(parseRelayRequest('not json'), null);
    assert.equal(parseRelayReply('{"t":"commands","commands":[1],"desired":null}'), null);
    assert.deepEqual(parseRelayReply('{"t":"ok"}'), { t: 'ok' });
  });
});
