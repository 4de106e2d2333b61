import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readHealth } from '../../agent/health-file.ts';
import type { Check, SelftestReport } from '../../agent/selftest/report.ts';
import { ToolServer } from '../../demo/handshake-tools.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { startSoftHsm, SOFTHSM_MODULE, type SoftHsm } from '../hal/support/softhsm.ts';
import { SelftestFleet, selftestFleetLog, until, type FleetDevice } from '../support/selftest-fleet.ts';

const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const DAY = 86_400_000;

/** Run the real CLI without blocking this process (agents may run in it). */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [AGENT, ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** No stack trace anywhere in the output. */
function noStack(r: { stdout: string; stderr: string }): void {
  assert.doesNotMatch(r.stdout + r.stderr, /^\s+at .+(:\d+:\d+\)?|<anonymous>)$/m, 'no stack trace');
  assert.doesNotMatch(r.stdout + r.stderr, /node:internal|\.ts:\d+/, 'no source locations');
}

/** Run `selftest --json`, check exit code and output hygiene, and return the report. */
async function selftest(dev: FleetDevice, expectCode: number, ...extra: string[]): Promise<SelftestReport> {
  const r = await cli('selftest', '--config', dev.configPath, '--json', '--timeout', '3000', ...extra);
  noStack(r);
  assert.equal(r.code, expectCode, r.stdout + r.stderr);
  return JSON.parse(r.stdout) as SelftestReport;
}

const check = (r: SelftestReport, name: string): Check => {
  const c = r.checks.find((x) => x.name === name);
  assert.ok(c, `check ${name} in ${r.checks.map((x) => x.name).join(', ')}`);
  return c;
};

describe('trustroll-agent selftest: failures name what is wrong and what to do (real processes)', function () {
  this.timeout(120_000);
  let fleet: SelftestFleet;
  let hsm: SoftHsm | null = null;
  const peers: ToolServer[] = [];
  before(async () => { fleet = await SelftestFleet.create(); });
  after(async () => {
    for (const p of peers) await p.stop();
    await fleet?.close();
    await hsm?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(selftestFleetLog.slice(-30).join('\n'));
  });

  it('a healthy device whose agent is not running: the agent check fails (E_AGENT_NOT_RUNNING, exit 1); the broker is probed without touching the session', async () => {
    const dev = await fleet.provision('console-ok', 'client');
    const r = await selftest(dev, 1);
    assert.equal(r.result, 'fail');
    assert.deepEqual(r.checks.map((c) => [c.name, c.status]), [
      ['key', 'ok'], ['store', 'ok'], ['chain', 'ok'], ['config', 'ok'], ['permissions', 'ok'], ['agent', 'fail'], ['link files', 'ok'], ['link', 'ok'], ['commands', 'ok'], ['peers', 'skipped'],
    ]);
    assert.equal(check(r, 'agent').code, 'E_AGENT_NOT_RUNNING');
    assert.match(check(r, 'agent').action!, /trustroll-agent run --config .*agent\.json/);
    assert.match(check(r, 'link').message, /no agent is running .*; the broker at mqtts:\/\/127\.0\.0\.1:\d+ accepted the device's management certificate/);
    assert.equal(r.trusts.length, 1);
    assert.equal(r.trusts[0]!.slot, 'current root');
  });

  it('key file deleted: the key check fails with E_HAL_KEY_NOT_FOUND and says how to recover', async () => {
    const dev = await fleet.provision('printer-nokey', 'server');
    unlinkSync(join(dev.dir, 'keys', 'device.key'));
    const r = await selftest(dev, 1);
    const key = check(r, 'key');
    assert.equal(key.status, 'fail');
    assert.equal(key.code, 'E_HAL_KEY_NOT_FOUND');
    assert.match(key.message, /the device key "device" is not in the HAL \(file\)/);
    assert.match(key.action!, /trustroll-agent init/);
    // Its TLS service does not run either: named as such.
    assert.equal(check(r, 'tls service').code, 'E_AGENT_TLS_SERVICE');
    assert.match(check(r, 'tls service').message, /nothing serves TLS on 127\.0\.0\.1:\d+ \(ECONNREFUSED/);
    const text = await cli('selftest', '--config', dev.configPath);
    noStack(text);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /\[FAIL\] key: the device key "device" is not in the HAL \(file\)\n\s+what to do: .*\n\s+code: E_HAL_KEY_NOT_FOUND/);
    assert.match(text.stdout, /result: FAIL/);
  });

  it('key in a SoftHSM2 token: signs for real; a wrong token label or module path fails naming the setting', async () => {
    hsm = await startSoftHsm('selftest-token');
    const hal = { keys: { backend: 'pkcs11' as const, module: SOFTHSM_MODULE, tokenLabel: hsm.tokenLabel, pin: hsm.pin, moduleEnv: hsm.env }, records: { backend: 'file' as const, dir: join(fleet.dir, 'hsm-records') } };
    const dev = await fleet.provision('console-hsm', 'client', { hal });
    const ok = await selftest(dev, 1);
    assert.equal(check(ok, 'key').status, 'ok');
    assert.equal(check(ok, 'agent').code, 'E_AGENT_NOT_RUNNING', 'the only failure: no agent runs');
    assert.deepEqual(ok.checks.filter((c) => c.status === 'fail').map((c) => c.name), ['agent']);
    assert.match(check(ok, 'key').message, /the HAL key \(pkcs11: token "selftest-token" .*logged in\) signed a random challenge/);
    const variant = (name: string, keys: object) => {
      const path = join(dev.dir, `${name}.json`);
      writeFileSync(path, JSON.stringify({ ...dev.config, hal: { ...hal, keys: { ...hal.keys, ...keys } } }));
      return { ...dev, configPath: path };
    };
    const token = check(await selftest(variant('token', { tokenLabel: 'no-such-token' }), 1), 'key');
    assert.equal(token.code, 'E_HAL_TOKEN_MISSING');
    assert.match(token.action!, /hal\.keys\.tokenLabel/);
    const module = check(await selftest(variant('module', { module: '/usr/lib/softhsm/missing.so' }), 1), 'key');
    assert.equal(module.code, 'E_HAL_CONFIG');
    assert.match(module.message, /missing\.so does not exist/);
    assert.match(module.action!, /check hal\.keys\.module/);
    // A TPM that is not there: the action names the software TPM socket of the TCTI.
    const tpmPath = join(dev.dir, 'tpm.json');
    writeFileSync(tpmPath, JSON.stringify({ ...dev.config, hal: { keys: { backend: 'tpm', tcti: `swtpm:path=${join(dev.dir, 'no-swtpm.sock')}`, storeDir: dev.dir, tokenLabel: 't', pin: '1' }, records: hal.records } }));
    const tpm = check(await selftest({ ...dev, configPath: tpmPath }, 1), 'key');
    assert.equal(tpm.code, 'E_HAL_TPM_ABSENT');
    assert.match(tpm.action!, /software TPM \(swtpm\)/);
  });

  it('store corrupt (bytes of the stored record flipped in the SQLite file): E_STORE_CORRUPT, and status refuses it too', async () => {
    const dev = await fleet.provision('console-corrupt', 'client');
    const file = join(dev.dir, 'trust-store.db');
    const bytes = readFileSync(file);
    const at = bytes.indexOf('"lastSeq":0');
    assert.ok(at > 0, 'the record is in the main database file');
    bytes.write('"lastSeq":7', at);
    writeFileSync(file, bytes);
    const r = await selftest(dev, 1);
    const store = check(r, 'store');
    assert.equal(store.status, 'fail');
    assert.equal(store.code, 'E_STORE_CORRUPT');
    assert.match(store.message, /content hash mismatch/);
    assert.match(store.action!, /provision the device again/);
    assert.equal(check(r, 'chain').status, 'skipped');
    const status = await cli('status', '--config', dev.configPath);
    noStack(status);
    assert.equal(status.code, 2);
    assert.match(status.stderr, /^trustroll-agent: E_STORE_CORRUPT: .*content hash mismatch/);
  });

  it('peer rejects the certificate (OpenSSL s_server trusting another CA): fails naming the peer and the reason', async () => {
    const dev = await fleet.provision('console-peer', 'client');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const files = {
      cert: join(fleet.dir, 'foreign.pem'), key: join(fleet.dir, 'foreign.key'), ca: join(fleet.dir, 'other-ca.pem'),
    };
    // The peer's certificate comes from the device's own root (the device trusts it); the peer trusts only another CA.
    writeFileSync(files.cert, fleet.ca.issueLeaf({ commonName: 'foreign-printer', spki: publicKey.export({ type: 'spki', format: 'der' }), role: 'server' }, new Date()));
    writeFileSync(files.key, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const other = await createRoot({ subject: 'CN=Other Fleet Root', algorithm: 'P-256', notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 365 * DAY) });
    writeFileSync(files.ca, other.cert);
    const peer = await ToolServer.start('openssl', (port) => ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', files.cert, '-key', files.key, '-verifyCAfile', files.ca, '-no-CAfile', '-no-CApath', '-no-CAstore', '-Verify', '1', '-verify_return_error', '-www'], /ACCEPT/, 10_000);
    peers.push(peer);
    const r = await selftest(dev, 1, '--peer', `127.0.0.1:${peer.port}`);
    const c = check(r, 'peer foreign-printer');
    assert.equal(c.status, 'fail');
    assert.equal(c.code, 'E_TLS_REJECTED');
    assert.match(c.message, new RegExp(`peer foreign-printer \\(127\\.0\\.0\\.1:${peer.port}\\) refused every certificate this device holds \\(device certificate \\(sha256 [0-9a-f]{16}…\\): `));
    assert.match(c.action!, /does not trust the root that issued/);
    const named = await selftest(dev, 1, '--peer', `foreign-printer@127.0.0.1:${peer.port}`);
    assert.equal(check(named, 'peer foreign-printer').code, 'E_TLS_REJECTED');
  });

  it('broker down, agent running: the link check reads the agent\'s health file (no second session) and fails; status shows it', async () => {
    const dev = await fleet.provision('console-link', 'client');
    const running = await fleet.start('console-link');
    await fleet.broker.stop();
    try {
      await until(() => { const v = readHealth(running.healthFile, new Date()); return v.state === 'running' && v.health.link?.connected === false; }, 10_000, 'the health file to show the lost link');
      const r = await selftest(dev, 1);
      const link = check(r, 'link');
      assert.equal(link.code, 'E_AGENT_LINK');
      assert.match(link.message, new RegExp(`the running agent \\(pid ${process.pid}\\) is not connected to the broker mqtts://127\\.0\\.0\\.1:\\d+`));
      assert.match(link.action!, /check that the broker runs/);
      const status = await cli('status', '--config', dev.configPath);
      noStack(status);
      assert.equal(status.code, 1, 'broker unreachable: NOT OK');
      assert.match(status.stdout, new RegExp(`agent: running \\(pid ${process.pid}, user .*, reported .*\\); link NOT connected to mqtts://`));
      assert.match(status.stdout, /FAIL link: the running agent .* is not connected to the broker/);
      assert.match(status.stdout, /hal: file OK: the HAL key/);
    } finally {
      await fleet.stop('console-link');
      await fleet.broker.start();
    }
    const stopped = JSON.parse((await cli('status', '--config', dev.configPath, '--json')).stdout);
    assert.equal(stopped.agent.state, 'stopped');
    assert.equal(stopped.hal.ok, true);
  });

  it('broker down, no agent: the probe names the refused connection', async () => {
    const dev = await fleet.provision('console-nobroker', 'client');
    await fleet.broker.stop();
    try {
      const r = await selftest(dev, 1);
      const link = check(r, 'link');
      assert.equal(link.code, 'E_AGENT_LINK');
      assert.match(link.message, /no agent is running, and the broker at mqtts:\/\/127\.0\.0\.1:\d+ does not answer \(ECONNREFUSED\)/);
      assert.match(link.action!, /link\.url/);
    } finally {
      await fleet.broker.start();
    }
  });

  it('bad usage and configuration: exit 2, one line, no stack trace', async () => {
    const dev = fleet.devices.get('console-ok')!;
    const cases: [string[], RegExp][] = [
      [['selftest', '--config', join(fleet.dir, 'nope.json')], /^trustroll-agent: E_AGENT_CONFIG: .*nope\.json/],
      [['selftest', '--config', dev.configPath, '--peer', 'no-port'], /E_AGENT_CONFIG: --peer "no-port"/],
      [['selftest', '--config', fleet.devices.get('printer-nokey')!.configPath, '--peer', '127.0.0.1:1'], /server-role device/],
      [['selftest', '--config', dev.configPath, '--timeout', 'soon'], /--timeout "soon"/],
      [['selftest', '--config', dev.configPath, '--bogus'], /unknown option '--bogus'/],
      [['selftest'], /required option '--config <file>' not specified/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(...args)));
    for (const [i, [args, re]] of cases.entries()) {
      const r = results[i]!;
      noStack(r);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stdout, '');
    }
  });

  it('status --config creates nothing: a missing store, key folder or EEPROM file is reported, not made', async () => {
    const dir = join(fleet.dir, 'never-initialised');
    const base = fleet.devices.get('console-ok')!.config;
    const sqlite = join(fleet.dir, 'sqlite-missing.json');
    writeFileSync(sqlite, JSON.stringify({ ...base, deviceId: 'ghost-1', hal: { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'records') } }, store: { kind: 'sqlite', path: join(dir, 'trust.db') } }));
    const eeprom = join(fleet.dir, 'eeprom-missing.json');
    writeFileSync(eeprom, JSON.stringify({ ...base, deviceId: 'ghost-2', hal: { keys: { backend: 'eeprom', protection: 'plain' }, records: { backend: 'eeprom' }, eeprom: { device: join(dir, 'eeprom.bin'), size: 65536, pageSize: 64, writeGranularity: 1 } }, store: { kind: 'hal-records' } }));
    await Promise.all(([[sqlite, /E_AGENT_NOT_PROVISIONED: no trust store at .*trust\.db/], [eeprom, /E_STORE_IO: .*hal\.eeprom\.device/]] as const).map(async ([file, re]) => {
      const r = await cli('status', '--config', file);
      noStack(r);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
      const t = await selftest({ ...fleet.devices.get('console-ok')!, configPath: file }, 1);
      assert.equal(check(t, 'key').code, 'E_HAL_CONFIG');
    }));
    assert.ok(!existsSync(dir), `neither status nor selftest created anything under ${dir}`);
    rmSync(dir, { recursive: true, force: true });
  });
});
