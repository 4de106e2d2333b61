/**
 * The technician's view of an EEPROM roll-back through the real CLI: a
 * freshly provisioned device whose newest slot (the provisioning) is
 * damaged reports E_STORE_REGRESSED from `status` and `run`, never
 * E_AGENT_NOT_PROVISIONED; after `init` only, a damaged slot makes `init`
 * refuse (E_HAL_ROLLBACK) instead of silently making a new key, until the
 * technician asks for one with --replace-lost-key. Exit code 1, one line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from '../../agent/agent.ts';
import { RecordStateStore } from '../../agent/record-state-store.ts';
import { openHal } from '../../hal/config.ts';
import { createRoot } from '../../manager/ca/root.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import { damageSlot } from '../faults/support/eeprom-damage.ts';

const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const G = { size: 65536, pageSize: 64, writeGranularity: 1 };
const cli = (...args: string[]) => spawnSync(process.execPath, [AGENT, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('agent CLI: EEPROM roll-back is never "not provisioned" nor a silent new key', function () {
  this.timeout(120_000);
  let dir: string;
  let config: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-rollback-cli-'));
    config = join(dir, 'agent.json');
    writeFileSync(config, JSON.stringify({
      deviceId: 'printer-1', role: 'server', store: { kind: 'hal-records' },
      hal: { keys: { backend: 'eeprom', protection: 'plain' }, records: { backend: 'eeprom' }, eeprom: { device: join(dir, 'eeprom.bin'), ...G } },
    }));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a provisioned device whose provisioning slot is damaged: status and run say E_STORE_REGRESSED (status exit 1; run exit 78, EX_CONFIG: not restarted by its unit)', async () => {
    assert.equal(cli('init', '--config', config).status, 0);
    const hal = await openHal(JSON.parse(readFileSync(config, 'utf8')).hal);
    const key = (await hal.keys.get('device'))!;
    const root = await createRoot({ subject: 'CN=Root', algorithm: 'P-256', notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 365 * 86_400_000) });
    const cert = new LeafIssuer(root).issue({ commonName: 'printer-1', publicKey: key.spki, profile: 'server', notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 300 * 86_400_000) });
    const store = new RecordStateStore(hal.records);
    await Agent.provision({ deviceId: 'printer-1', role: 'server', store, keys: hal.keys, clock: systemClock, logger: createLogger({ level: 'error' }) }, { root: root.cert, certificate: cert, keyLabel: 'device' });
    await store.close();
    await hal.keys.close();
    assert.equal(cli('status', '--config', config).status, 0);

    // A link for `run` (it is checked before the store is opened).
    const pki = await ManagementPki.create({ now: new Date() });
    const id = pki.device('printer-1');
    const f = (n: string, t: string) => { writeFileSync(join(dir, n), t); return join(dir, n); };
    const cfg = JSON.parse(readFileSync(config, 'utf8'));
    cfg.link = { url: 'mqtts://127.0.0.1:1', ca: f('ca.pem', pki.ca), cert: f('d.pem', id.cert), key: f('d.key', id.key), commandKeys: { [pki.commandKey.keyId]: f('ck.pem', pki.trustedCommandKeys().get(pki.commandKey.keyId)!.export({ type: 'spki', format: 'pem' }) as string) } };
    writeFileSync(config, JSON.stringify(cfg));
    damageSlot(join(dir, 'eeprom.bin'), G, 'newer', 'zero-page', 3);
    for (const [args, code] of [[['status', '--config', config], 1], [['run', '--config', config], 78]] as const) {
      const r = cli(...args);
      assert.equal(r.status, code, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /E_STORE_REGRESSED: .*roll-back.*provisioning was lost.*trustroll-agent provision/, args[0]);
      assert.doesNotMatch(r.stderr, /E_AGENT_NOT_PROVISIONED/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  });

  it('after init only, a damaged key slot: init refuses to make a new key silently; --replace-lost-key makes one', () => {
    const first = cli('init', '--config', config);
    assert.equal(first.status, 0);
    const img = readFileSync(join(dir, 'eeprom.bin'));
    img.writeUInt32BE(0, 0); // the only image's header (slot A)
    writeFileSync(join(dir, 'eeprom.bin'), img);
    const refused = cli('init', '--config', config);
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /E_HAL_ROLLBACK: .*device key "device" made by an earlier init is gone.*--replace-lost-key/);
    assert.equal(refused.stdout, '', 'no CSR printed');
    const replaced = cli('init', '--config', config, '--replace-lost-key');
    assert.equal(replaced.status, 0, replaced.stderr);
    assert.match(replaced.stdout, /BEGIN CERTIFICATE REQUEST/);
    assert.notEqual(replaced.stdout, first.stdout, 'a new key, so a new CSR');
    assert.equal(cli('init', '--config', config).status, 0, 'repaired: the store is no longer rolled back');
  });
});
