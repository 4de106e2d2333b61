import { strict as assert } from 'node:assert';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { summarize, trustHash } from '../../agent/device-record.ts';
import { SqliteStateStore } from '../../agent/sqlite-state-store.ts';
import { deviceStatus } from '../../agent/status.ts';
import { chainCheck } from '../../agent/selftest/local-checks.ts';
import type { ReadOnlyDevice } from '../../agent/read-only.ts';
import { MemoryKeyStore } from '../../demo/memory-key-store.ts';
import { createRoot, type RootMaterial } from '../../manager/ca/root.ts';
import { createRootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { canonicalHash } from '../../protocol/canonical-json.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Command, StepPayload } from '../../protocol/messages/command.ts';
import { fingerprint } from '../../protocol/pem.ts';
import type { Role } from '../../protocol/steps.ts';

const DAY = 86_400_000;
const T0 = new Date('2026-11-24T00:00:00Z');
const fp = (pem: string) => fingerprint(new X509Certificate(pem));

interface Dev { id: string; role: Role; agent: Agent; store: SqliteStateStore; spki: Buffer; path: string }

/** A server and a client of a separate-roots fleet (client root Rc0, server root Rs0), and both roots' update sets. */
async function separateFleet(dir: string) {
  const clock = new ManualClock(new Date(T0.getTime() + DAY));
  const root = (cn: string) => createRoot({ subject: `CN=${cn},O=trustroll test`, algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3650 * DAY) });
  const rc0 = await root('Client Root');
  const rs0 = await root('Server Root');
  const uc = await createRootUpdate({ old: rc0, now: clock.now(), lifetimeDays: 3650 });
  const us = await createRootUpdate({ old: rs0, now: clock.now(), lifetimeDays: 3650 });
  const keys = new MemoryKeyStore();
  const logger = createLogger({ level: 'error' });
  const leaf = (by: RootMaterial, id: string, role: Role, spki: Buffer) => new LeafIssuer(by).issue({ commonName: id, publicKey: spki, profile: role, notBefore: T0, notAfter: new Date(T0.getTime() + 700 * DAY) });
  const make = async (id: string, role: Role, single = false): Promise<Dev> => {
    const key = await keys.create(id, 'P-256');
    const own = role === 'server' ? rs0 : rc0;
    const peer = role === 'server' ? rc0 : rs0;
    const path = join(dir, `${id}.db`);
    const store = new SqliteStateStore(path);
    const agent = single
      ? await Agent.provision({ deviceId: id, role, store, keys, clock, logger }, { root: own.cert, certificate: leaf(own, id, role, key.spki), keyLabel: id })
      : await Agent.provision({ deviceId: id, role, store, keys, clock, logger }, { root: peer.cert, issuerRoot: own.cert, certificate: leaf(own, id, role, key.spki), keyLabel: id });
    return { id, role, agent, store, spki: key.spki, path };
  };
  const server = await make('srv-1', 'server');
  const client = await make('cli-1', 'client');
  const cn = leaf(uc.next, 'cli-1', 'client', client.spki);
  const sn = leaf(us.next, 'srv-1', 'server', server.spki);
  const command = (dev: Dev, seq: number, schedule: string, step: string, payload: StepPayload, rotationId = `rot-${schedule}`): Command =>
    ({ v: 1, kind: 'command', deviceId: dev.id, rotationId, schedule, seq, step, issuedAt: clock.now().toISOString(), payload });
  return { clock, rc0, rs0, uc, us, server, client, cn, sn, command, make };
}

/** The record's bytes on disk (database and WAL). */
const bytes = (d: Dev) => createHash('sha256').update(readFileSync(d.path)).update((() => { try { return readFileSync(`${d.path}-wal`); } catch { return Buffer.alloc(0); } })()).digest('hex');

async function refused(d: Dev, cmd: Command, code: string, message?: RegExp): Promise<void> {
  const before = d.agent.snapshot();
  const b = bytes(d);
  const ack = await d.agent.handle(cmd);
  assert.equal(ack.ok, false, `expected ${code}, got success`);
  assert.equal(ack.error?.code, code, ack.error?.message);
  if (message) assert.match(ack.error!.message, message);
  assert.deepEqual(d.agent.snapshot(), before, 'record unchanged');
  assert.equal(bytes(d), b, 'store bytes unchanged');
}

const ok = async (d: Dev, cmd: Command) => {
  const ack = await d.agent.handle(cmd);
  assert.equal(ack.ok, true, JSON.stringify(ack.error));
  return ack;
};

describe('agent: separate client and server roots', function () {
  this.timeout(30_000);
  let dir: string;
  let f: Awaited<ReturnType<typeof separateFleet>>;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-separate-'));
    f = await separateFleet(dir);
  });
  afterEach(async () => {
    await f.server.store.close();
    await f.client.store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('provisioning keeps the peers\' root for TLS and the own issuer root apart; a certificate not from the issuer root is refused', async () => {
    const { server, client, rc0, rs0 } = f;
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(rc0.cert)], 'a server verifies clients with the client root');
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(rs0.cert)], 'a client verifies servers with the server root');
    assert.equal(fp(server.agent.snapshot().issuer!.current), fp(rs0.cert));
    assert.equal(fp(client.agent.snapshot().issuer!.current), fp(rc0.cert));
    assert.equal(server.agent.status().issuer?.current, fp(rs0.cert), 'the acknowledgement summary names the issuer root');
    const keys = new MemoryKeyStore();
    const k = await keys.create('x', 'P-256');
    const cert = new LeafIssuer(rc0).issue({ commonName: 'srv-2', publicKey: k.spki, profile: 'server', notBefore: T0, notAfter: new Date(T0.getTime() + DAY * 700) });
    const store = new SqliteStateStore(join(dir, 'srv-2.db'));
    try {
      await assert.rejects(Agent.provision({ deviceId: 'srv-2', role: 'server', store, keys, clock: f.clock, logger: createLogger({ level: 'error' }) }, { root: rc0.cert, issuerRoot: rs0.cert, certificate: cert, keyLabel: 'x' }), /not issued by the issuer root/);
    } finally {
      await store.close();
    }
  });

  it('client-root rotation CR1..CR5: servers learn and then keep only the new client root; the client moves to Cn; no server certificate or client trust store changes', async () => {
    const { server, client, uc, rc0, rs0, cn, command } = f;
    const serverCert = server.agent.identities()[0]!.cert;
    await ok(server, command(server, 1, 'client-root', 'CR1', { distribution: uc.distribution }));
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(rc0.cert), fp(uc.distribution)], 'Dc next to the old client root');
    await ok(client, command(client, 1, 'client-root', 'CR2', { distribution: uc.distribution }));
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(rs0.cert)], 'the client verifies servers with the unchanged server root');
    assert.equal(fp(client.agent.snapshot().issuer!.distribution!), fp(uc.distribution), 'Dc kept as issuer anchor');
    await ok(client, command(client, 2, 'client-root', 'CR3', { certificate: cn }));
    assert.deepEqual(client.agent.identities().map((i) => fp(i.cert)).slice(0, 1), [fp(cn)], 'Cn presented first');
    assert.equal(client.agent.identities().length, 2, 'old certificate kept as fallback');
    await ok(server, command(server, 2, 'client-root', 'CR4', { newRoot: uc.next.cert }));
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(uc.next.cert)]);
    const ack = await ok(client, command(client, 3, 'client-root', 'CR5', { newRoot: uc.next.cert }));
    assert.deepEqual(client.agent.identities().map((i) => fp(i.cert)), [fp(cn)]);
    assert.deepEqual(client.agent.snapshot().issuer, { current: client.agent.snapshot().issuer!.current, distribution: null, next: null });
    assert.equal(fp(client.agent.snapshot().issuer!.current), fp(uc.next.cert));
    assert.equal(ack.state.issuer?.current, fp(uc.next.cert));
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(rs0.cert)]);
    assert.equal(server.agent.identities()[0]!.cert, serverCert, 'the server certificate never changed');
    assert.equal(fp(server.agent.snapshot().issuer!.current), fp(rs0.cert), 'the server root is untouched');
  });

  it('server-root rotation SR1..SR5 is the mirror: no client certificate changes', async () => {
    const { server, client, us, rs0, rc0, sn, command } = f;
    const clientCert = client.agent.identities()[0]!.cert;
    await ok(client, command(client, 1, 'server-root', 'SR1', { distribution: us.distribution }));
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(rs0.cert), fp(us.distribution)]);
    await ok(server, command(server, 1, 'server-root', 'SR2', { distribution: us.distribution }));
    await ok(server, command(server, 2, 'server-root', 'SR3', { certificate: sn }));
    assert.deepEqual(server.agent.identities().map((i) => fp(i.cert)), [fp(sn)], 'a server replaces its one certificate');
    await ok(client, command(client, 2, 'server-root', 'SR4', { newRoot: us.next.cert }));
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(us.next.cert)]);
    await ok(server, command(server, 3, 'server-root', 'SR5', { newRoot: us.next.cert }));
    assert.equal(fp(server.agent.snapshot().issuer!.current), fp(us.next.cert));
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(rc0.cert)], 'the server still verifies clients with the client root');
    assert.deepEqual(client.agent.identities().map((i) => i.cert), [clientCert], 'the client certificate never changed');
  });

  it('refuses out-of-order steps, material of the other root, and schedules of the other root layout, changing nothing', async () => {
    const { server, client, uc, us, cn, sn, command } = f;
    await refused(client, command(client, 1, 'client-root', 'CR3', { certificate: cn }), 'E_OUT_OF_ORDER', /next allowed is CR2/);
    await refused(server, command(server, 1, 'client-root', 'CR4', { newRoot: uc.next.cert }), 'E_OUT_OF_ORDER', /next allowed is CR1/);
    await refused(server, command(server, 1, 'server-root', 'SR3', { certificate: sn }), 'E_OUT_OF_ORDER', /next allowed is SR2/);
    // Rule 2: the server root's D does not verify against the client root a server trusts, nor the reverse on the issuer side.
    await refused(server, command(server, 1, 'client-root', 'CR1', { distribution: us.distribution }), 'E_VERIFY_D');
    await refused(client, command(client, 1, 'client-root', 'CR2', { distribution: us.distribution }), 'E_VERIFY_D');
    // A Cn under the new client key needs the issuer D, and a leaf of the wrong root fails against it.
    await ok(client, command(client, 1, 'client-root', 'CR2', { distribution: uc.distribution }));
    const wrong = new LeafIssuer(us.next).issue({ commonName: 'cli-1', publicKey: client.spki, profile: 'client', notBefore: T0, notAfter: new Date(T0.getTime() + 700 * DAY) });
    await refused(client, command(client, 2, 'client-root', 'CR3', { certificate: wrong }), 'E_VERIFY_LEAF');
    await refused(server, command(server, 1, 'six-step', 'P1', { distribution: uc.distribution }, 'rot-single'), 'E_ROOT_LAYOUT', /separate client and server roots/);
    const single = await f.make('srv-9', 'server', true);
    try {
      await refused(single, command(single, 1, 'client-root', 'CR1', { distribution: uc.distribution }), 'E_ROOT_LAYOUT', /holds one fleet root/);
    } finally {
      await single.store.close();
    }
  });

  it('catch-up of a separate-roots device: both roots\' missed updates in one verified step (either chain may be empty, not both); refused without an issuer chain, with a link of the other root, or a certificate under the peers\' root, changing nothing', async () => {
    const { server, client, uc, us, rc0, cn, sn, command } = f;
    const link = (u: typeof uc) => ({ distribution: u.distribution, newRoot: u.next.cert });
    const catchUp = (d: Dev, payload: StepPayload) => command(d, 1, 'catch-up', d.role === 'server' ? 'C1' : 'C2', payload, 'catchup-separate');
    // The client slept through a client-root and a server-root rotation: its peers' root (server) and its issuer root (client) both moved.
    await refused(client, catchUp(client, { chain: [link(us)], certificate: cn }), 'E_ROOT_LAYOUT', /without an issuer chain/);
    await refused(client, catchUp(client, { chain: [], issuerChain: [], certificate: cn }), 'E_SCHEMA', /no root key update/);
    await refused(client, catchUp(client, { chain: [link(us)], issuerChain: [link(us)], certificate: cn }), 'E_VERIFY_D', /issuer chain link 1 of 1/);
    await refused(client, catchUp(client, { chain: [link(uc)], issuerChain: [link(uc)], certificate: cn }), 'E_VERIFY_D', /peer chain link 1 of 1/);
    const underPeers = new LeafIssuer(us.next).issue({ commonName: 'cli-1', publicKey: client.spki, profile: 'client', notBefore: T0, notAfter: new Date(T0.getTime() + 700 * DAY) });
    await refused(client, catchUp(client, { chain: [link(us)], issuerChain: [link(uc)], certificate: underPeers }), 'E_VERIFY_LEAF');
    await ok(client, catchUp(client, { chain: [link(us)], issuerChain: [link(uc)], certificate: cn }));
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(us.next.cert)], 'verifies servers with the new server root only');
    assert.deepEqual(client.agent.snapshot().issuer, { current: client.agent.snapshot().issuer!.current, distribution: null, next: null });
    assert.equal(fp(client.agent.snapshot().issuer!.current), fp(uc.next.cert), 'its issuer root is the new client root');
    assert.deepEqual(client.agent.identities().map((i) => fp(i.cert)), [fp(cn)], 'presents only Cn');
    // The server slept through the server-root rotation only: its peers' root did not move (empty chain), its issuer root did.
    await ok(server, catchUp(server, { chain: [], issuerChain: [link(us)], certificate: sn }));
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(rc0.cert)], 'still verifies clients with the unchanged client root');
    assert.equal(fp(server.agent.snapshot().issuer!.current), fp(us.next.cert));
    assert.deepEqual(server.agent.identities().map((i) => fp(i.cert)), [fp(sn)]);
    const single = await f.make('srv-8', 'server', true);
    try {
      await refused(single, catchUp(single, { chain: [link(uc)], issuerChain: [], certificate: sn }), 'E_ROOT_LAYOUT', /holds one fleet root/);
    } finally {
      await single.store.close();
    }
  });

  it('renewal under the root of the device\'s side: checked against its issuer root (not the peers\'), no root changes; refused while that root is part-way through a rotation', async () => {
    const { server, client, rs0, rc0, us, command } = f;
    const renewed = (by: RootMaterial, d: Dev) => new LeafIssuer(by).issue({ commonName: d.id, publicKey: d.spki, profile: d.role, notBefore: T0, notAfter: new Date(T0.getTime() + 900 * DAY) });
    const renew = (d: Dev, seq: number, certificate: string) => command(d, seq, 'renew', d.role === 'server' ? 'RS' : 'RC', { certificate }, `renew-${seq}`);
    await refused(server, renew(server, 1, renewed(rc0, server)), 'E_VERIFY_LEAF', /not issued by the root that issues this device's certificates/);
    const sn2 = renewed(rs0, server);
    await ok(server, renew(server, 1, sn2));
    assert.deepEqual(server.agent.identities().map((i) => i.cert), [sn2]);
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(rc0.cert)], 'no root changed');
    assert.equal(fp(server.agent.snapshot().issuer!.current), fp(rs0.cert));
    const cn2 = renewed(rc0, client);
    await ok(client, renew(client, 1, cn2));
    assert.deepEqual(client.agent.identities().map((i) => i.cert), [cn2]);
    // The server root part-way on the server (its issuer D stored): a renewal waits until that rotation is done.
    await ok(server, command(server, 2, 'server-root', 'SR2', { distribution: us.distribution }));
    await refused(server, renew(server, 3, renewed(rs0, server)), 'E_ROTATION_IN_PROGRESS', /rot-server-root is still open/);
  });

  it('the technician\'s status and self-test read the issuer slots: the certificate chains to the issuer root', async () => {
    const { server, rs0, rc0 } = f;
    const st = deviceStatus(server.agent.snapshot(), [], f.clock.now());
    assert.deepEqual(st.trust.map((t) => [t.slot, t.sha256]), [['current root', fp(rc0.cert)], ['issuer root (own certificate\'s, not for peers)', fp(rs0.cert)]]);
    const chain = chainCheck({ record: server.agent.snapshot() } as unknown as ReadOnlyDevice, f.clock.now());
    assert.equal(chain.status, 'ok', chain.message);
    assert.match(chain.message, /chains to issuer current root/);
  });

  it('a single-root record (no issuer slots, as written before separate roots) keeps its summary and store hash', async () => {
    const single = await f.make('cli-9', 'client', true);
    try {
      const r = single.agent.snapshot();
      assert.equal('issuer' in r, false);
      assert.equal(trustHash(r), canonicalHash({ trust: r.trust, identity: r.identity }));
      assert.equal('issuer' in summarize(r), false);
      await single.store.close();
      const store = new SqliteStateStore(single.path);
      const reopened = await Agent.open({ deviceId: 'cli-9', role: 'client', store, keys: new MemoryKeyStore(), clock: f.clock, logger: createLogger({ level: 'error' }) });
      assert.deepEqual(reopened.snapshot(), r);
      single.store = store;
    } finally {
      await single.store.close();
    }
  });
});
