/**
 * OldWithNew distributed with the old-root clean-up (issue 11 item 5;
 * RFC 9810 §4.4): a client that dropped R0 at P6 and kept OldWithNew still
 * authenticates a printer that was left behind (P1 done, P4 never came:
 * excluded while offline) and still presents its K0-signed certificate;
 * without OldWithNew it cannot. Checked with the agent's own TLS (Node) and
 * with OpenSSL and GnuTLS, for a new root with the same and with a new
 * subject. A forged OldWithNew is refused and changes nothing.
 */
import assert from 'node:assert/strict';
import { anchorsOf, identitiesOf } from '../../agent/device-record.ts';
import { DeviceTlsConnector } from '../../agent/tls/device-tls-connector.ts';
import { DeviceTlsServer } from '../../agent/tls/device-tls-server.ts';
import { CrossStack } from '../../demo/cross-stack.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { silentLogger } from '../../protocol/log.ts';
import { deviceFixture, refused, type DeviceFixture, type TestDevice } from '../support/device-fixture.ts';

/** Bring the client to "R1 only" (P2, P3, P6) and the server to "R0 + D, old certificate" (P1 only). */
async function straggler(f: DeviceFixture, withOldWithNew: boolean): Promise<void> {
  const ok = async (dev: TestDevice, seq: number, step: string, payload: object) => {
    const ack = await dev.agent.handle(f.command(dev, seq, step, payload));
    assert.equal(ack.ok, true, `${dev.id} ${step}: ${ack.error?.code} ${ack.error?.message}`);
  };
  await ok(f.server, 1, 'P1', { distribution: f.update.distribution });
  await ok(f.client, 1, 'P2', { distribution: f.update.distribution });
  await ok(f.client, 2, 'P3', { certificate: f.cn });
  // The server never gets P4 (excluded while offline); P5 needs P4, so the clean-up runs on the client only.
  await ok(f.client, 3, 'P6', withOldWithNew ? { newRoot: f.update.next.cert, oldWithNew: f.update.oldWithNew } : { newRoot: f.update.next.cert });
}

async function handshake(f: DeviceFixture): Promise<{ ok: boolean; code: string | null }> {
  const server = await DeviceTlsServer.start({ agent: f.server.agent, keys: f.server.keys, logger: silentLogger });
  const connector = await DeviceTlsConnector.create({ agent: f.client.agent, keys: f.client.keys, logger: silentLogger });
  try {
    const r = await connector.check({ host: '127.0.0.1', port: server.port, serverId: f.server.id });
    return { ok: r.ok, code: r.error?.code ?? null };
  } finally {
    connector.close();
    await server.close();
  }
}

async function crossStack(f: DeviceFixture) {
  const devices = [f.server, f.client].map((d) => {
    const r = d.agent.snapshot();
    return { id: d.id, role: d.role, anchors: anchorsOf(r), identities: identitiesOf(r) };
  });
  const keyPem = async (id: string, label: string) => {
    const dev = id === f.server.id ? f.server : f.client;
    const ref = await dev.keys.tlsKey!(label);
    if (ref.kind !== 'pem') throw new Error('not an in-memory key');
    return ref.keyPem;
  };
  const cross = new CrossStack({ keyPem, logger: silentLogger });
  try {
    return await cross.check(devices, 'straggler');
  } finally {
    await cross.close();
  }
}

describe('OldWithNew: a device that trusts only R1 still verifies a peer that has not switched', function () {
  this.timeout(60_000);
  let f: DeviceFixture;
  afterEach(async () => f?.close());

  for (const sameDn of [true, false]) {
    it(`with OldWithNew the client authenticates the left-behind printer: Node, OpenSSL and GnuTLS (${sameDn ? 'same' : 'new'} subject)`, async () => {
      f = await deviceFixture({ sameDn });
      await straggler(f, true);
      const trust = f.client.agent.snapshot().trust;
      assert.equal(fingerprintPem(trust.current), fingerprintPem(f.update.next.cert), 'R1 is the current root');
      assert.equal(trust.distribution, null);
      assert.ok(trust.oldWithNew, 'OldWithNew is kept');
      assert.equal(f.client.agent.status().trust.oldWithNew, fingerprintPem(trust.oldWithNew!), 'the state summary shows it');
      const node = await handshake(f);
      assert.deepEqual(node, { ok: true, code: null });
      const x = await crossStack(f);
      assert.ok(x.openssl.attempted > 0 && x.gnutls.attempted > 0);
      assert.equal(x.openssl.failed + x.gnutls.failed, 0, JSON.stringify([x.openssl, x.gnutls]));
      // The printer catches up (P4): its K1 leaf still verifies next to OldWithNew, whose subject may equal R1's.
      assert.equal((await f.server.agent.handle(f.command(f.server, 2, 'P4', { certificate: f.sn }))).ok, true);
      assert.deepEqual(await handshake(f), { ok: true, code: null });
      const y = await crossStack(f);
      assert.equal(y.openssl.failed + y.gnutls.failed, 0, JSON.stringify([y.openssl, y.gnutls]));
    });
  }

  it('without OldWithNew the same client refuses the left-behind printer (why the method needs it)', async () => {
    f = await deviceFixture();
    await straggler(f, false);
    assert.equal(f.client.agent.snapshot().trust.oldWithNew, undefined);
    const node = await handshake(f);
    assert.equal(node.ok, false);
  });

  it('refuses a forged OldWithNew (D, or R1 itself) with E_VERIFY_OLD_WITH_NEW and changes nothing', async () => {
    f = await deviceFixture();
    const ok = async (seq: number, step: string, payload: object) => assert.equal((await f.client.agent.handle(f.command(f.client, seq, step, payload))).ok, true);
    await ok(1, 'P2', { distribution: f.update.distribution });
    await ok(2, 'P3', { certificate: f.cn });
    for (const [i, forged] of [f.update.distribution, f.update.next.cert, f.r0.cert].entries()) {
      await refused(f, f.client, f.command(f.client, 3 + i, 'P6', { newRoot: f.update.next.cert, oldWithNew: forged }), 'E_VERIFY_OLD_WITH_NEW');
    }
  });
});
