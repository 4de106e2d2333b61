import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSoftHsm, SOFTHSM_MODULE, type SoftHsm } from '../hal/support/softhsm.ts';
import { startSwTpm, type SwTpm } from '../hal/support/swtpm.ts';
import { provisionToken } from '../../hal/pkcs11/provision.ts';
import { DEFAULT_TPM2_PKCS11_MODULE, tpmModuleEnv } from '../../hal/tpm/tpm-key-store.ts';

const MANAGER = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));

/** One backend's `hal` settings, with anything the child process must have in its environment. */
interface Backend {
  name: string;
  hal(dir: string): Promise<{ hal: object; env?: Record<string, string>; stop?: () => Promise<void> }>;
}

const BACKENDS: Backend[] = [
  { name: 'file', hal: async (d) => ({ hal: { keys: { backend: 'file', dir: join(d, 'keys') }, records: { backend: 'file', dir: join(d, 'records') } } }) },
  {
    name: 'eeprom (sealed under a KEK)',
    hal: async (d) => {
      writeFileSync(join(d, 'kek.bin'), Buffer.alloc(32, 7), { mode: 0o600 });
      return { hal: { keys: { backend: 'eeprom', protection: 'sealed', kekFile: join(d, 'kek.bin') }, records: { backend: 'eeprom' }, eeprom: { device: join(d, 'eeprom.bin'), size: 256 * 1024, pageSize: 64, writeGranularity: 1 } } };
    },
  },
  {
    name: 'pkcs11 (SoftHSM2)',
    hal: async () => {
      const hsm: SoftHsm = await startSoftHsm('algorithm-cli');
      return { hal: { keys: { backend: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: hsm.tokenLabel, pin: hsm.pin, moduleEnv: hsm.env }, records: { backend: 'file', dir: join(hsm.dir, 'records') } }, stop: () => hsm.stop() };
    },
  },
  {
    name: 'tpm (swtpm via tpm2-pkcs11)',
    hal: async (d) => {
      const tpm: SwTpm = await startSwTpm();
      const storeDir = join(d, 'tpm2-pkcs11');
      mkdirSync(storeDir, { mode: 0o700 });
      const env = { DBUS_SESSION_BUS_ADDRESS: tpm.busAddress };
      const saved = process.env.DBUS_SESSION_BUS_ADDRESS;
      process.env.DBUS_SESSION_BUS_ADDRESS = tpm.busAddress;
      try {
        await provisionToken({ module: DEFAULT_TPM2_PKCS11_MODULE, env: tpmModuleEnv({ tcti: tpm.tcti, storeDir }), tokenLabel: 'algorithm-cli', soPin: '24681357', userPin: '123456' });
      } finally {
        if (saved === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
        else process.env.DBUS_SESSION_BUS_ADDRESS = saved;
      }
      return { hal: { keys: { backend: 'tpm', tcti: tpm.tcti, storeDir, tokenLabel: 'algorithm-cli', pin: '123456' }, records: { backend: 'file', dir: join(d, 'records') } }, env, stop: () => tpm.stop() };
    },
  },
];

describe('CLI: trustroll-agent init --algorithm RSA-2048 in every HAL backend, enrolled in an RSA fleet', function () {
  this.timeout(180_000);
  // One RSA fleet root for every backend's device (the manager side is the same each time).
  let caDir: string;
  let rootPem: string;
  before(() => {
    caDir = mkdtempSync(join(tmpdir(), 'trustroll-alg-ca-'));
    const root = spawnSync(process.execPath, [MANAGER, 'ca', 'init', '--data', join(caDir, 'manager'), '--subject', 'CN=Legacy Fleet Root,O=Example', '--algorithm', 'RSA-2048'], { encoding: 'utf8' });
    assert.equal(root.status, 0, root.stderr);
    rootPem = root.stdout;
  });
  after(() => rmSync(caDir, { recursive: true, force: true }));

  for (const [i, b] of BACKENDS.entries()) {
    it(`${b.name}: an RSA-2048 key made in the HAL, its CSR, enrolment with --verifies RSA, provisioning, status`, async function () {
      const dir = mkdtempSync(join(tmpdir(), 'trustroll-alg-cli-'));
      let opened: Awaited<ReturnType<Backend['hal']>> | undefined;
      try {
        try {
          opened = await b.hal(dir);
        } catch (err) {
          if (/not installed|missing|ENOENT/i.test((err as Error).message) && b.name.startsWith('tpm')) this.skip();
          throw err;
        }
        const env = { ...process.env, ...opened.env };
        const run = (bin: string, ...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
        const cfg = join(dir, 'agent.json');
        const id = `printer-rsa-${i}`;
        writeFileSync(cfg, JSON.stringify({ deviceId: id, role: 'server', hal: opened.hal, store: { kind: 'hal-records' } }));
        const data = join(caDir, 'manager');
        writeFileSync(join(dir, 'root.pem'), rootPem);

        const csr = run(AGENT, 'init', '--config', cfg, '--algorithm', 'RSA-2048');
        assert.equal(csr.status, 0, csr.stderr);
        writeFileSync(join(dir, 'req.pem'), csr.stdout);
        const text = spawnSync('openssl', ['req', '-in', join(dir, 'req.pem'), '-verify', '-noout', '-text'], { encoding: 'utf8' });
        assert.equal(text.status, 0, text.stderr);
        assert.match(text.stdout + text.stderr, /verify OK/i);
        assert.match(text.stdout, /Public Key Algorithm: rsaEncryption/);
        assert.match(text.stdout, /Public-Key: \(2048 bit\)/);
        assert.match(text.stdout, /Signature Algorithm: sha256WithRSAEncryption/);

        const other = run(AGENT, 'init', '--config', cfg, '--algorithm', 'P-256');
        assert.equal(other.status, 2, 'init never replaces a key of another algorithm (a usage error)');
        assert.match(other.stderr, /E_HAL_KEY_EXISTS.*already exists as RSA-2048, not P-256/);
        const again = run(AGENT, 'init', '--config', cfg);
        assert.equal(again.status, 0, again.stderr);
        assert.equal(again.stdout.length > 0, true);

        const cert = run(MANAGER, 'enroll', '--data', data, '--id', id, '--role', 'server', '--csr', join(dir, 'req.pem'), '--verifies', 'RSA');
        assert.equal(cert.status, 0, cert.stderr);
        writeFileSync(join(dir, 'device.pem'), cert.stdout);
        const leaf = new X509Certificate(cert.stdout);
        assert.equal(leaf.publicKey.asymmetricKeyType, 'rsa');
        assert.ok(leaf.verify(new X509Certificate(rootPem).publicKey));
        if (i === 0) {
          // The manager's declarations, once (they do not depend on the device's backend).
          const shown = run(MANAGER, 'verifies', '--data', data, '--id', id);
          assert.equal(shown.stdout, `${id} verifies RSA\n`, shown.stderr);
          const ecOnly = run(MANAGER, 'verifies', '--data', data, '--id', id, '--set', 'ecdsa');
          assert.equal(ecOnly.stdout, `${id} verifies ECDSA\n`, ecOnly.stderr);
          assert.match(ecOnly.stderr, /cannot verify the fleet root \(RSA-2048\)/);
          const reset = run(MANAGER, 'verifies', '--data', data, '--id', id, '--undeclare');
          assert.equal(reset.stdout, `${id} verifies RSA,ECDSA (not declared)\n`, reset.stderr);
          assert.equal(run(MANAGER, 'verifies', '--data', data, '--id', id, '--set', 'RSA').status, 0);
          const unknown = run(MANAGER, 'verifies', '--data', data, '--id', 'nobody');
          assert.match(unknown.stderr, /E_DEVICE_UNKNOWN/);
        }
        const prov = run(AGENT, 'provision', '--config', cfg, '--root', join(dir, 'root.pem'), '--cert', join(dir, 'device.pem'));
        assert.equal(prov.status, 0, prov.stderr);
        const status = run(AGENT, 'status', '--config', cfg, '--json');
        assert.equal(status.status, 0, status.stderr + status.stdout);
        assert.equal(JSON.parse(status.stdout).deviceId, id);
      } finally {
        await opened?.stop?.();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('unknown algorithms are refused before anything is made', () => {
    const r = spawnSync(process.execPath, [AGENT, 'init', '--config', '/nonexistent.json', '--algorithm', 'RSA-1024'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Allowed choices are P-256, RSA-2048, RSA-3072/);
  });
});
