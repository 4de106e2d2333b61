/**
 * Every setting is checked at start, before anything listens or connects:
 * a garbage, empty or mismatched `link.key`, a garbage `link.cert` or
 * `link.ca`, a certificate given as the key, a key of another device, a
 * garbage `link.commandKeys` entry, an unknown HAL backend and a SQLite
 * store in a missing folder each stop `trustroll-agent run` with exit code
 * 2, one line naming the setting and the fix, no stack trace, the
 * server's mTLS port never opened and nothing created.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../demo/mosquitto.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';

const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));

function run(config: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [AGENT, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, stderr, stdout }); });
  });
}

const refused = (port: number) => new Promise<boolean>((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(false); });
  s.once('error', () => resolve(true));
});

describe('agent: every setting checked at start', function () {
  this.timeout(120_000);
  let dir: string;
  let pki: ManagementPki;
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-settings-'));
    pki = await ManagementPki.create({ now: new Date() });
    port = await freePort();
    const f = (name: string, text: string) => { writeFileSync(join(dir, name), text); return join(dir, name); };
    const me = pki.device('printer-1');
    const other = pki.device('printer-2');
    f('ca.pem', pki.ca);
    f('device.pem', me.cert);
    f('device.key', me.key);
    f('other.key', other.key);
    f('garbage.pem', 'this is not PEM at all\n');
    f('garbage-cert.pem', '-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n');
    f('empty.key', '');
    f('command-key.pem', pki.trustedCommandKeys().get(pki.commandKey.keyId)!.export({ type: 'spki', format: 'pem' }) as string);
    mkdirSync(join(dir, 'keys'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const config = (name: string, patch: { link?: Record<string, unknown>; hal?: unknown; store?: unknown }) => {
    const link = { url: 'mqtts://127.0.0.1:1', ca: join(dir, 'ca.pem'), cert: join(dir, 'device.pem'), key: join(dir, 'device.key'), commandKeys: { [pki.commandKey.keyId]: join(dir, 'command-key.pem') }, ...patch.link };
    const c = {
      deviceId: 'printer-1', role: 'server',
      hal: patch.hal ?? { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'keys') } },
      store: patch.store ?? { kind: 'sqlite', path: join(dir, 'store', 'trust.db') },
      link, tls: { host: '127.0.0.1', port },
    };
    const p = join(dir, `${name}.json`);
    writeFileSync(p, JSON.stringify(c));
    return p;
  };

  const cases: [string, (d: string) => Parameters<typeof config>[1], RegExp][] = [
    ['garbage link.key', (d) => ({ link: { key: join(d, 'garbage.pem') } }), /setting "link\.key": .* holds no readable private key/],
    ['certificate given as link.key', (d) => ({ link: { key: join(d, 'device.pem') } }), /setting "link\.key": .* holds a certificate, not a private key/],
    ['empty link.key', (d) => ({ link: { key: join(d, 'empty.key') } }), /setting "link\.key": .* is empty/],
    ['key of another device', (d) => ({ link: { key: join(d, 'other.key') } }), /setting "link\.key": .* does not match the certificate in "link\.cert"/],
    ['garbage link.cert', (d) => ({ link: { cert: join(d, 'garbage.pem') } }), /setting "link\.cert": .* holds no PEM certificate/],
    ['unparsable link.cert', (d) => ({ link: { cert: join(d, 'garbage-cert.pem') } }), /setting "link\.cert": .* does not parse as X\.509/],
    ['garbage link.ca', (d) => ({ link: { ca: join(d, 'garbage.pem') } }), /setting "link\.ca": .* holds no PEM certificate/],
    ['link.ca of another PKI', (d) => ({ link: { ca: join(d, 'device.pem') } }), /setting "link\.cert": .* is not issued by the CA in "link\.ca"/],
    ['garbage link.commandKeys', (d) => ({ link: { commandKeys: { k1: join(d, 'garbage.pem') } } }), /setting "link\.commandKeys\.k1": .* holds no EC public key/],
    ['unknown HAL backend', (d) => ({ hal: { keys: { backend: 'flash', dir: '/x' }, records: { backend: 'file', dir: '/x' } } }), /setting "hal\.keys\.backend": .*must be one of file, eeprom, pkcs11, tpm/],
    ['SQLite store in a missing folder', (d) => ({ store: { kind: 'sqlite', path: join(d, 'no-such-folder', 'trust.db') } }), /setting "store\.path": the folder .*no-such-folder does not exist/],
  ];

  it('refuses each bad setting with exit code 78 (EX_CONFIG: not restarted), the setting named, no stack trace, nothing listening or created', async () => {
    const fixed = cases.map(([name, patch, re]) => [name, patch(dir), re] as const);
    const before = readdirSync(dir).sort();
    for (const [name, patch, re] of fixed) {
      const r = await run(config(name.replace(/\W+/g, '-'), patch));
      assert.equal(r.code, 78, `${name}: exit ${r.code}; stderr ${r.stderr}`);
      assert.match(r.stderr, re, name);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${name}: stack trace`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line, got ${r.stderr}`);
      assert.equal(r.stdout, '', `${name}: the agent reported something before failing`);
      assert.ok(await refused(port), `${name}: the mTLS port was opened`);
    }
    assert.equal(existsSync(join(dir, 'store')), false, 'no store folder or file was created');
    assert.deepEqual(readdirSync(dir).filter((n) => !n.endsWith('.json')).sort(), before.filter((n) => !n.endsWith('.json')).sort());
    assert.deepEqual(readdirSync(join(dir, 'keys')), [], 'no key was created');
  });
});
