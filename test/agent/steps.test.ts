import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { fixturePerTest, type DeviceFixture } from '../support/device-fixture.ts';
import { AGENT_BACKENDS } from '../support/agent-backends.ts';
import { verifyCsr } from '../../manager/ca/csr.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { fingerprint } from '../../protocol/pem.ts';

const fp = (pem: string) => fingerprint(new X509Certificate(pem));

for (const b of AGENT_BACKENDS) describe(`agent on ${b.name}: steps, persistence, idempotency, re-key`, function () {
  this.timeout(60_000);
  let f!: DeviceFixture;
  const fixtures = fixturePerTest(b, (x) => { f = x; });

  it('applies P1..P6 in order, keeping the old root until R1 replaces it', async () => {
    const { server, client, update } = f;
    const d = update.distribution;
    let ack = await server.agent.handle(f.command(server, 1, 'P1', { distribution: d }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(f.r0.cert), fp(d)]);
    ack = await client.agent.handle(f.command(client, 1, 'P2', { distribution: d }));
    assert.equal(ack.ok, true);
    ack = await client.agent.handle(f.command(client, 2, 'P3', { certificate: f.cn }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.equal(client.agent.identities().length, 2, 'client keeps the old certificate as fallback');
    assert.equal(fp(client.agent.identities()[0]!.cert), fp(f.cn), 'new certificate is presented first');
    ack = await server.agent.handle(f.command(server, 2, 'P4', { certificate: f.sn }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.equal(server.agent.identities().length, 1, 'a server holds exactly one certificate');
    ack = await server.agent.handle(f.command(server, 3, 'P5', { newRoot: update.next.cert }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(update.next.cert)]);
    ack = await client.agent.handle(f.command(client, 3, 'P6', { newRoot: update.next.cert }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(update.next.cert)]);
    assert.equal(client.agent.identities().length, 1);
    assert.deepEqual(ack.state.completed, ['P2', 'P3', 'P6']);
    assert.equal(ack.state.trust.current, fp(update.next.cert));
    const history = await client.store.history(10);
    assert.deepEqual(history.map((h) => h.step), ['P2', 'P3', 'P6']);
  });

  it('applies the batched requests B1, B2, B3', async () => {
    const { server, client, update } = f;
    const d = update.distribution;
    assert.equal((await client.agent.handle(f.command(client, 1, 'B1', { distribution: d, newRoot: update.next.cert, certificate: f.cn }))).ok, true);
    assert.equal(client.agent.trustAnchors().length, 3, 'client holds R0, D and R1 after B1');
    const b2 = await server.agent.handle(f.command(server, 1, 'B2', { distribution: d, newRoot: update.next.cert, certificate: f.sn }));
    assert.equal(b2.ok, true, JSON.stringify(b2.error));
    assert.deepEqual(server.agent.trustAnchors().map(fp), [fp(update.next.cert)], 'server deletes R0 and D at once');
    assert.equal((await client.agent.handle(f.command(client, 2, 'B3', {}))).ok, true);
    assert.deepEqual(client.agent.trustAnchors().map(fp), [fp(update.next.cert)]);
    assert.equal(client.agent.identities().length, 1);
  });

  it('works when the new root has a new DN', async () => {
    await fixtures.replace({ sameDn: false });
    const { server, update } = f;
    assert.equal((await server.agent.handle(f.command(server, 1, 'P1', { distribution: update.distribution }))).ok, true);
    const p4 = await server.agent.handle(f.command(server, 2, 'P4', { certificate: f.sn }));
    assert.equal(p4.ok, true, JSON.stringify(p4.error));
  });

  it('answers a redelivered command with the stored acknowledgement and changes nothing', async () => {
    const { server, update } = f;
    const cmd = f.command(server, 1, 'P1', { distribution: update.distribution });
    const first = await server.agent.handle(JSON.stringify(cmd));
    const before = (await f.bytes(server));
    const again = await server.agent.handle(JSON.stringify(cmd));
    assert.deepEqual(again, first);
    assert.equal((await f.bytes(server)), before, 'no byte of the store changed');
    assert.equal((await server.store.history(10)).length, 1);
  });

  it('notifies listeners (TLS hot reload) only on a durable change', async () => {
    const { server, update } = f;
    const seen: number[] = [];
    server.agent.onChange((r) => { seen.push(r.lastSeq); });
    const cmd = f.command(server, 1, 'P1', { distribution: update.distribution });
    await server.agent.handle(cmd);
    await server.agent.handle(cmd);
    await server.agent.handle(f.command(server, 2, 'P5', { newRoot: update.next.cert }));
    assert.deepEqual(seen, [1]);
  });

  it('survives a restart: the reopened store holds the same record, and a redelivery gets the stored ack', async () => {
    const { update } = f;
    const cmd = f.command(f.client, 1, 'P2', { distribution: update.distribution });
    const first = await f.client.agent.handle(cmd);
    const before = f.client.agent.snapshot();
    f.client = await f.reopen(f.client);
    assert.deepEqual(f.client.agent.snapshot(), before);
    const bytes = await f.bytes(f.client);
    assert.deepEqual(await f.client.agent.handle(cmd), first);
    assert.equal(await f.bytes(f.client), bytes, 'nothing written for a redelivery');
    assert.equal((await f.client.agent.handle(f.command(f.client, 2, 'P3', { certificate: f.cn }))).ok, true);
  });

  it('re-keys inside the HAL: CSR signed by the new key, the new leaf installs and switches the identity key', async () => {
    const { server, update } = f;
    const oldSpki = (await server.keys.get(server.keyLabel))!.spki;
    const csr = await server.agent.rekey();
    const req = verifyCsr(csr);
    assert.equal(req.commonName, 'srv-1');
    assert.ok(!req.publicKey.equals(oldSpki), 'a new key');
    const pending = server.agent.snapshot().pendingKey!;
    assert.ok((await server.keys.get(pending))!.spki.equals(req.publicKey), 'the key lives in the HAL under the pending label');
    assert.ok(verifyCsr(await server.agent.rekey()).publicKey.equals(req.publicKey), 'asking again reuses the pending key');
    server.agent = (await f.reopen(server)).agent;
    assert.equal(server.agent.snapshot().pendingKey, pending, 'the pending key survives a restart');
    const sn2 = new LeafIssuer(update.next).issue({ commonName: 'srv-1', publicKey: req.publicKey, profile: 'server', notBefore: f.clock.now(), notAfter: new Date(f.clock.now().getTime() + 86_400_000 * 30) });
    assert.equal((await server.agent.handle(f.command(server, 1, 'P1', { distribution: update.distribution }))).ok, true);
    const ack = await server.agent.handle(f.command(server, 2, 'P4', { certificate: sn2 }));
    assert.equal(ack.ok, true, JSON.stringify(ack.error));
    assert.equal(server.agent.identities()[0]!.keyLabel, pending, 'the identity now uses the new key');
    assert.equal(server.agent.snapshot().pendingKey, null);
  });
});
