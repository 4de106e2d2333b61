import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MANAGER = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const run = (bin: string, ...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

describe('CLI: provisioning a device from scratch', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-cli-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const config = (over: object = {}) => {
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify({
      deviceId: 'printer-01', role: 'server',
      hal: { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'records') } },
      store: { kind: 'hal-records' },
      ...over,
    }));
    return file;
  };

  it('ca init -> agent init (CSR from the HAL key) -> enroll -> provision -> status', () => {
    const data = join(dir, 'manager');
    const root = run(MANAGER, 'ca', 'init', '--data', data, '--subject', 'CN=Printer Fleet Root,O=Example');
    assert.equal(root.status, 0, root.stderr);
    writeFileSync(join(dir, 'root.pem'), root.stdout);
    const cfg = config();
    const csr = run(AGENT, 'init', '--config', cfg);
    assert.equal(csr.status, 0, csr.stderr);
    assert.match(csr.stdout, /BEGIN CERTIFICATE REQUEST/);
    writeFileSync(join(dir, 'req.pem'), csr.stdout);
    const again = run(AGENT, 'init', '--config', cfg);
    assert.equal(again.status, 0, 'init is repeatable: it reuses the key');
    const cert = run(MANAGER, 'enroll', '--data', data, '--id', 'printer-01', '--role', 'server', '--csr', join(dir, 'req.pem'));
    assert.equal(cert.status, 0, cert.stderr);
    writeFileSync(join(dir, 'device.pem'), cert.stdout);
    const prov = run(AGENT, 'provision', '--config', cfg, '--root', join(dir, 'root.pem'), '--cert', join(dir, 'device.pem'));
    assert.equal(prov.status, 0, prov.stderr);
    const status = run(AGENT, 'status', '--config', cfg, '--json');
    assert.equal(status.status, 0, status.stderr);
    const s = JSON.parse(status.stdout);
    assert.equal(s.deviceId, 'printer-01');
    assert.match(s.trust[0].subject, /Printer Fleet Root/);
    const twice = run(AGENT, 'provision', '--config', cfg, '--root', join(dir, 'root.pem'), '--cert', join(dir, 'device.pem'));
    assert.equal(twice.status, 2);
    assert.match(twice.stderr, /already provisioned/);
  });

  it('bad configuration fails at start naming the setting to fix', () => {
    const cases: [object, RegExp][] = [
      [{ role: 'printer' }, /E_AGENT_CONFIG: setting "role"/],
      [{ hal: { keys: { backend: 'floppy' }, records: { backend: 'file', dir: dir } } }, /E_AGENT_CONFIG: setting "hal.keys/],
      [{ store: { kind: 'sqlite' } }, /E_AGENT_CONFIG: setting "store"/],
      [{ extra: true }, /unknown setting "extra"/],
    ];
    for (const [over, re] of cases) {
      const r = run(AGENT, 'init', '--config', config(over));
      assert.equal(r.status, 2, JSON.stringify(over));
      assert.match(r.stderr, re);
    }
    const missing = run(AGENT, 'status', '--config', join(dir, 'nope.json'));
    assert.match(missing.stderr, /E_AGENT_CONFIG: .*nope\.json/);
    const pkcs11 = run(AGENT, 'init', '--config', config({ hal: { keys: { backend: 'pkcs11', module: '/nonexistent/libp11.so', tokenLabel: 't', pin: '1' }, records: { backend: 'file', dir } } }));
    assert.equal(pkcs11.status, 2);
    assert.match(pkcs11.stderr, /E_HAL_CONFIG.*keys\.module/);
  });

  it('enroll refuses a CSR for another device id', () => {
    const data = join(dir, 'manager');
    assert.equal(run(MANAGER, 'ca', 'init', '--data', data, '--subject', 'CN=Root').status, 0);
    writeFileSync(join(dir, 'req.pem'), run(AGENT, 'init', '--config', config()).stdout);
    const r = run(MANAGER, 'enroll', '--data', data, '--id', 'printer-02', '--role', 'server', '--csr', join(dir, 'req.pem'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /E_CSR_IDENTITY/);
  });
});
