/**
 * `trustroll mgmt init --broker-host` with an IP address: the broker's
 * certificate carries it as an IP subjectAltName, so a device or manager
 * connecting to mqtts://<that address> passes Node's host check (as MQTT.js
 * does it). Checked with a real TLS server on 127.0.0.2 serving the broker
 * files the command wrote; the control is the old form, the address as a
 * DNS name, which the host check refuses.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { brokerAltNames } from '../../manager/pki/management-pki.ts';

const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));

/** Connect to `host`:`port` trusting `ca` as a client would; resolves with the TLS error code, or 'ok'. */
function handshake(host: string, port: number, ca: string, servername?: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port, ca, ...(servername ? { servername } : {}) });
    s.once('secureConnect', () => { s.end(); resolve('ok'); });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('mgmt init --broker-host: an IP address becomes an IP subjectAltName', function () {
  this.timeout(30_000);
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('splits the names it is given: addresses as IP entries, names as DNS entries, localhost and loopback always', () => {
    assert.deepEqual(brokerAltNames({ brokerDnsNames: ['broker.example', '10.20.30.40', 'fd00::7', 'localhost'], brokerIpAddresses: ['192.0.2.1'] }), {
      dnsNames: ['localhost', 'broker.example'],
      ipAddresses: ['127.0.0.1', '::1', '10.20.30.40', 'fd00::7', '192.0.2.1'],
    });
  });

  it('a broker reached at 127.0.0.2 by address passes the host check; the address as a DNS name does not', async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-broker-host-'));
    const r = spawnSync(process.execPath, [MANAGER_BIN, 'mgmt', 'init', '--dir', dir, '--broker-host', 'broker.example', '127.0.0.2'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const cert = readFileSync(join(dir, 'broker.pem'), 'utf8');
    const san = new X509Certificate(cert).subjectAltName ?? '';
    assert.match(san, /IP Address:127\.0\.0\.2/);
    assert.match(san, /DNS:broker\.example/);
    assert.doesNotMatch(san, /DNS:127\.0\.0\.2/);

    const ca = readFileSync(join(dir, 'mgmt-ca.pem'), 'utf8');
    const server = createServer({ cert, key: readFileSync(join(dir, 'broker-key.pem'), 'utf8') }, (s) => s.end());
    await new Promise<void>((ok) => server.listen(0, '127.0.0.2', ok));
    try {
      const port = (server.address() as AddressInfo).port;
      assert.equal(await handshake('127.0.0.2', port, ca), 'ok');
      // A name it was not issued for is refused by the same server: the host check is live.
      assert.equal(await handshake('127.0.0.2', port, ca, 'other.example'), 'ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      await new Promise((ok) => server.close(ok));
    }

    // Control: the address as a DNS entry (what mgmt init wrote before) fails Node's host check.
    const { checkServerIdentity } = await import('node:tls');
    const asDns = { subject: { CN: 'trustroll-broker' }, subjectaltname: 'DNS:localhost, DNS:127.0.0.2' } as unknown as Parameters<typeof checkServerIdentity>[1];
    assert.equal((checkServerIdentity('127.0.0.2', asDns) as NodeJS.ErrnoException | undefined)?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    const asIp = { subject: { CN: 'trustroll-broker' }, subjectaltname: 'DNS:localhost, IP Address:127.0.0.2' } as unknown as Parameters<typeof checkServerIdentity>[1];
    assert.equal(checkServerIdentity('127.0.0.2', asIp), undefined);
  });
});
