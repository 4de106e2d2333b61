/**
 * Live mTLS check used by every backend's TLS test: a Node `tls` server with
 * requestCert + rejectUnauthorized on a free loopback port, and the HAL
 * dialer presenting the device key. Each connection must be a full
 * handshake (no resumption) in which the server saw the device's own key.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { KeyStore } from '../../../hal/key-store.ts';
import { createTlsDialer } from '../../../hal/tls/dialer.ts';
import { createTestPki } from './pki.ts';

/** Result of a series of handshakes. */
export interface MtlsResult {
  readonly mode: string;
  readonly handshakes: number;
  readonly ms: number;
}

function readAll(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

/** Connects `count` times with key `label` of `keys`; asserts each handshake authenticated that key. */
export async function mtlsSeries(keys: KeyStore, label: string, count: number): Promise<MtlsResult> {
  const info = await keys.get(label);
  assert.ok(info, `key ${label} exists`);
  const pki = await createTestPki();
  const deviceCert = await pki.issueDevice(`printer-${label}`, info.spki);
  let resumed = 0;
  const server = tls.createServer(
    { cert: pki.serverCertPem, key: pki.serverKeyPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: true },
    (sock) => {
      if (sock.isSessionReused()) resumed++;
      const peer = sock.getPeerCertificate();
      const spki = new crypto.X509Certificate(peer.raw).publicKey.export({ type: 'spki', format: 'der' });
      sock.end(`${peer.subject.CN} ${spki.equals(info.spki) ? 'same-key' : 'other-key'}`);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const dialer = await createTlsDialer(keys, label, {
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    certPem: deviceCert,
    caPem: pki.caPem,
    sessionResume: false,
  });
  const t0 = performance.now();
  try {
    for (let i = 0; i < count; i++) {
      const stream = await dialer.connect();
      assert.equal(await readAll(stream), `printer-${label} same-key`, `handshake ${i}`);
    }
  } finally {
    await dialer.close();
    await new Promise((r) => server.close(r));
  }
  const ms = performance.now() - t0;
  if (dialer.mode === 'terminator') assert.equal(resumed, 0, 'every handshake must be a full one that signs with the token key');
  return { mode: dialer.mode, handshakes: count, ms };
}
