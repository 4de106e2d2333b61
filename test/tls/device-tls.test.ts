import { strict as assert } from 'node:assert';
import tls from 'node:tls';
import { DeviceTlsServer } from '../../agent/tls/device-tls-server.ts';
import { DeviceTlsConnector, type TlsTarget } from '../../agent/tls/device-tls-connector.ts';
import { isTlsError } from '../../agent/tls/errors.ts';
import { shortFingerprint } from '../../agent/tls/material.ts';
import { tlsFixture, type TlsFixture } from '../support/tls-fixture.ts';

/** Reads one line from a paused socket (the long-lived connection). */
function request(sock: tls.TLSSocket, line: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error(`no answer to "${line}" within ${timeoutMs} ms`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) done(null, buf.slice(0, i));
    };
    const onClose = () => done(new Error('connection closed'));
    const done = (err: Error | null, out?: string) => {
      clearTimeout(timer);
      sock.off('data', onData).off('close', onClose).pause();
      if (err) reject(err);
      else resolve(out!);
    };
    sock.on('data', onData).once('close', onClose).resume();
    sock.write(`${line}\n`);
  });
}

/** Waits until `cond` holds (the server sees a client's close a moment later). */
async function until(cond: () => boolean, what: string, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  describe(`live device mTLS (${version})`, function () {
    this.timeout(20_000);
    let f: TlsFixture;
    let server: DeviceTlsServer;
    let connector: DeviceTlsConnector;
    let target: TlsTarget;

    beforeEach(async () => {
      f = await tlsFixture();
      const common = { logger: f.logger, minVersion: version, maxVersion: version };
      server = await DeviceTlsServer.start({ agent: f.server.agent, keys: f.server.keys, ...common });
      connector = await DeviceTlsConnector.create({ agent: f.client.agent, keys: f.client.keys, timeoutMs: 3_000, ...common });
      target = { host: '127.0.0.1', port: server.port, serverId: 'srv-1' };
    });
    afterEach(async () => {
      connector.close();
      await server.close();
      await f.close();
    });

    it('authenticates with the provisioned identities and counts the handshake', async () => {
      const r = await connector.check(target);
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(r.identity, 'active');
      assert.equal(r.protocol, version);
      assert.equal(server.stats().accepted, 1);
      assert.equal(server.stats().rejected, 0);
    });

    it('hot-reloads every trust change without restart; a long-lived connection keeps exchanging data', async () => {
      const { result, socket } = await connector.open(target);
      assert.ok(result.ok && socket, JSON.stringify(result));
      try {
        assert.equal(await request(socket, 'hello 0'), 'echo hello 0');
        const port = server.port;
        const steps = [[f.server, 'P1'], [f.client, 'P2'], [f.client, 'P3'], [f.server, 'P4'], [f.server, 'P5'], [f.client, 'P6']] as const;
        for (const [i, [dev, step]] of steps.entries()) {
          await f.step(dev, step);
          assert.equal(await request(socket, `after ${step}`), `echo after ${step}`, `long-lived connection alive after ${step}`);
          const fresh = await connector.check(target);
          assert.equal(fresh.ok, true, `${step}: ${JSON.stringify(fresh.error)}`);
          assert.equal(fresh.fallback, false, `six-step order never needs the fallback (${step})`);
          assert.equal(server.port, port, 'same listener');
          await until(() => server.stats().open === 1, `only the long-lived connection stays open (${i})`);
        }
        assert.equal(server.stats().reloads, 3, 'P1, P4 and P5 each reloaded the server context');
        assert.equal(connector.stats().contextsBuilt, 2, 'one per certificate (C0, Cn); root changes reuse them');
        // The server now presents Sn and trusts only R1: a new connection proves it.
        const { result: last, socket: s2 } = await connector.open(target);
        assert.ok(last.ok && s2);
        assert.equal(shortFingerprint(s2.getPeerX509Certificate()!.toString()), shortFingerprint(f.sn));
        s2.destroy();
        assert.equal(await request(socket, 'still here'), 'echo still here');
      } finally {
        socket.destroy();
      }
    });

    it('a session from before a trust change cannot be resumed after it (fresh ticket keys per reload)', async () => {
      const key = await f.client.keys.tlsKey('device');
      assert.equal(key.kind, 'pem');
      const ctx = tls.createSecureContext({ key: key.kind === 'pem' ? key.keyPem : '', cert: f.client.agent.identities()[0]!.cert, minVersion: version, maxVersion: version });
      const dial = (session?: Buffer) => new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
        let got: Buffer | undefined;
        const sock = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'srv-1', secureContext: ctx, rejectUnauthorized: false, session });
        sock.on('session', (sess: Buffer) => (got = sess));
        sock.once('data', () => { const reused = sock.isSessionReused(); setTimeout(() => { sock.destroy(); resolve({ reused, session: got }); }, 20); });
        sock.once('error', reject);
      });
      const first = await dial();
      assert.ok(first.session, 'the server issued a session');
      assert.equal((await dial(first.session)).reused, true, 'resumption works while nothing changed');
      await f.step(f.server, 'P1');
      assert.equal((await dial(first.session)).reused, false, 'after the reload the old session is not accepted');
    });

    it('falls back to the old client certificate when the server does not trust K1 yet (P3 before P1)', async () => {
      await f.step(f.client, 'P2');
      await f.step(f.client, 'P3');
      const r = await connector.check(target);
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(r.fallback, true);
      assert.equal(r.identity, 'fallback');
      assert.deepEqual(r.attempts.map((a) => [a.identity, a.ok, a.error?.code ?? null]), [['active', false, 'E_TLS_REJECTED'], ['fallback', true, null]]);
      assert.deepEqual({ ...connector.stats(), contextsBuilt: 0 }, { attempted: 1, ok: 1, failed: 0, unreachable: 0, fallbacks: 1, retries: 0, handshakes: 2, contextsBuilt: 0 });
      assert.equal(server.stats().rejected, 1, 'the server counted the refused certificate');
      assert.equal(server.stats().accepted, 1);
      // Once the server stores D (P1) the new certificate is accepted first time.
      await f.step(f.server, 'P1');
      const again = await connector.check(target);
      assert.equal(again.ok && !again.fallback && again.identity === 'active', true, JSON.stringify(again));
    });

    it('fails when the server rejects every certificate the client holds', async () => {
      await f.step(f.server, 'P1');
      await f.step(f.server, 'P4');
      await f.step(f.server, 'P5'); // server trusts R1 only
      await f.step(f.client, 'P2'); // client trusts K1, but still presents only C0
      const r = await connector.check(target);
      assert.equal(r.ok, false);
      assert.equal(r.error?.code, 'E_TLS_REJECTED', JSON.stringify(r));
      assert.equal(r.attempts.length, 1);
      assert.deepEqual({ ...connector.stats(), contextsBuilt: 0 }, { attempted: 1, ok: 0, failed: 1, unreachable: 0, fallbacks: 0, retries: 0, handshakes: 1, contextsBuilt: 0 });
      assert.equal(server.stats().rejected, 1);
      assert.ok(f.lines.some((l) => l.includes('client certificate rejected')), 'the server logged the rejection');
      assert.ok(!f.lines.some((l) => l.includes('PRIVATE KEY')), 'no key material in logs');
    });

    it('reports an untrusted server without trying the old certificate (P4 before P2)', async () => {
      await f.step(f.server, 'P1');
      await f.step(f.server, 'P4'); // the server presents Sn; the client trusts only R0
      const r = await connector.check(target);
      assert.equal(r.ok, false);
      assert.equal(r.error?.code, 'E_TLS_SERVER_UNTRUSTED', JSON.stringify(r));
      assert.equal(r.attempts.length, 1, 'no fallback: the old certificate would not help');
      assert.equal(connector.stats().failed, 1);
      // The server may count the handshake as accepted (its side completed); the client hung up before any data.
    });
  });
}

describe('live device mTLS: wiring errors', () => {
  it('a connection refused at TCP level is E_TLS_CONNECT; wrong roles are E_TLS_ROLE', async () => {
    const f = await tlsFixture();
    try {
      const c = await DeviceTlsConnector.create({ agent: f.client.agent, keys: f.client.keys, logger: f.logger });
      const r = await c.check({ host: '127.0.0.1', port: 1, serverId: 'srv-1' });
      assert.equal(r.error?.code, 'E_TLS_CONNECT');
      assert.equal(r.attempts.length, 1);
      await assert.rejects(DeviceTlsServer.start({ agent: f.client.agent, keys: f.client.keys, logger: f.logger }), (e) => isTlsError(e, 'E_TLS_ROLE'));
      await assert.rejects(DeviceTlsConnector.create({ agent: f.server.agent, keys: f.server.keys, logger: f.logger }), (e) => isTlsError(e, 'E_TLS_ROLE'));
      c.close();
    } finally {
      await f.close();
    }
  });
});
