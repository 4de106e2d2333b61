import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { LinkConnector } from '../../agent/link-rotation/link-connector.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { silentLogger } from '../../protocol/log.ts';
import { spkiOf } from '../../protocol/pem.ts';

/** A broker stand-in: mutual TLS trusting only `ca`; resolves the client certificate each accepted handshake presented. */
async function tlsBroker(o: { ca: string; cert: string; key: string; maxVersion: 'TLSv1.2' | 'TLSv1.3' }): Promise<{ server: Server; port: number; accepted: string[] }> {
  const accepted: string[] = [];
  const server = createServer({ ...o, requestCert: true, rejectUnauthorized: true }, (s: TLSSocket) => {
    accepted.push(new X509Certificate(s.getPeerCertificate(false).raw).fingerprint256);
    s.end('CONNACK');
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as { port: number }).port, accepted };
}

/** One connection attempt through the connector; resolves when its socket closed. */
const attempt = (c: LinkConnector) => new Promise<void>((resolve) => {
  const s = c.open();
  s.on('error', () => undefined);
  s.on('data', () => undefined);
  s.once('close', () => resolve());
});

describe('agent: link connector presents the new link certificate first and falls back to the old one [0075-0076]', () => {
  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${maxVersion}: a broker that does not trust the new root yet gets the old certificate on the next attempt; once it does, the new one`, async () => {
      const oldPki = await ManagementPki.create({ now: new Date() });
      const newPki = await ManagementPki.create({ now: new Date(), subject: 'CN=trustroll management CA 2,O=trustroll' });
      const old = oldPki.device('console-1');
      const renewed = newPki.deviceCertificate('console-1', spkiOf(new X509Certificate(old.cert)));
      const ca = `${oldPki.ca}\n${newPki.ca}`;
      const material = [{ ca, cert: renewed, key: old.key }, { ca, cert: old.cert, key: old.key }];
      const fp = (pem: string) => new X509Certificate(pem).fingerprint256;

      const before = await tlsBroker({ ca: oldPki.ca, ...oldPki.broker, maxVersion });
      try {
        const c = new LinkConnector(`mqtts://127.0.0.1:${before.port}`, () => material, silentLogger);
        await attempt(c);
        await attempt(c);
        assert.deepEqual(before.accepted, [fp(old.cert)], 'refused the new certificate, accepted the old one');
        assert.deepEqual(c.stats, { attempts: 2, refused: 1, fallbacks: 1 });
        await attempt(c);
        assert.equal(c.stats.refused, 2, 'every new connection presents the new certificate first again');
      } finally {
        before.server.close();
      }

      const after = await tlsBroker({ ca, ...oldPki.broker, maxVersion });
      try {
        const c = new LinkConnector(`mqtts://127.0.0.1:${after.port}`, () => material, silentLogger);
        await attempt(c);
        assert.deepEqual(after.accepted, [fp(renewed)], 'a broker trusting both roots gets the new certificate at once');
        assert.deepEqual(c.stats, { attempts: 1, refused: 0, fallbacks: 0 });
      } finally {
        after.server.close();
      }
    });
  }

  it('a broker that is down is not a refusal: the next attempt still presents the new certificate', async () => {
    const pki = await ManagementPki.create({ now: new Date() });
    const id = pki.device('console-1');
    const probe = await tlsBroker({ ca: pki.ca, ...pki.broker, maxVersion: 'TLSv1.2' });
    const port = probe.port;
    await new Promise((r) => probe.server.close(r));
    const c = new LinkConnector(`mqtts://127.0.0.1:${port}`, () => [{ ca: pki.ca, cert: id.cert, key: id.key }, { ca: pki.ca, cert: id.cert, key: id.key }], silentLogger);
    await attempt(c);
    await attempt(c);
    assert.deepEqual(c.stats, { attempts: 2, refused: 0, fallbacks: 0 });
  });
});
