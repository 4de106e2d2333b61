import { strict as assert } from 'node:assert';
import net from 'node:net';
import type { KeyStore, TlsKeyRef } from '../../hal/key-store.ts';
import { DeviceTlsServer } from '../../agent/tls/device-tls-server.ts';
import { DeviceTlsConnector } from '../../agent/tls/device-tls-connector.ts';
import { isTlsError, TLS_ERRORS } from '../../agent/tls/errors.ts';
import { runTool, ToolServer, pool } from '../../demo/handshake-tools.ts';
import { tlsFixture } from '../support/tls-fixture.ts';

describe('live TLS: nothing hangs, nothing leaks', function () {
  this.timeout(15_000);

  it('a tool run past its deadline is killed and reported as timed out', async () => {
    const t0 = performance.now();
    const r = await runTool('sleep', ['30'], { timeoutMs: 200 });
    assert.equal(r.timedOut, true);
    assert.equal(r.code, null);
    assert.ok(performance.now() - t0 < 2_000);
    const missing = await runTool('trustroll-no-such-tool', [], { timeoutMs: 1_000 });
    assert.equal(missing.code, null);
    assert.match(missing.stderr, /spawn failed/);
  });

  it('a server that never becomes ready is killed with E_TLS_TOOL', async () => {
    await assert.rejects(ToolServer.start('sleep', () => ['30'], /never/, 150), (e) => isTlsError(e, 'E_TLS_TOOL'));
    await assert.rejects(ToolServer.start('false', () => [], /never/, 1_000), (e) => isTlsError(e, 'E_TLS_TOOL'));
  });

  it('pool keeps at most `limit` jobs in flight and keeps order', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await pool([5, 1, 4, 2, 3], 2, async (n) => {
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setTimeout(r, n * 3));
      inFlight--;
      return n * 10;
    });
    assert.deepEqual(out, [50, 10, 40, 20, 30]);
    assert.equal(peak, 2);
  });

  it('a peer that accepts TCP but never speaks TLS times out with E_TLS_TIMEOUT', async () => {
    const f = await tlsFixture();
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const sockets: net.Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    try {
      const c = await DeviceTlsConnector.create({ agent: f.client.agent, keys: f.client.keys, logger: f.logger, timeoutMs: 300 });
      const r = await c.check({ host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port, serverId: 'srv-1' });
      assert.equal(r.error?.code, 'E_TLS_TIMEOUT');
      assert.equal(r.attempts.length, 1, 'a timeout is not a refusal: no fallback');
      c.close();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
      await f.close();
    }
  });

  it('a token-resident key is refused with E_TLS_KEY_UNSUPPORTED, without the PIN in the message', async () => {
    const f = await tlsFixture();
    try {
      const token: TlsKeyRef = { kind: 'pkcs11', label: 'device', module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'printer', pin: '246810', env: {} };
      const keys: KeyStore = Object.assign(Object.create(f.server.keys) as KeyStore, { tlsKey: async () => token });
      await assert.rejects(DeviceTlsServer.start({ agent: f.server.agent, keys, logger: f.logger }), (e) => isTlsError(e, 'E_TLS_KEY_UNSUPPORTED') && !String(e).includes('246810'));
    } finally {
      await f.close();
    }
  });

  it('every TLS error code is prefixed and documented with an action', () => {
    for (const [code, doc] of Object.entries(TLS_ERRORS)) {
      assert.match(code, /^E_TLS_[A-Z_]+$/);
      assert.ok(doc.length > 40, code);
    }
  });
});
