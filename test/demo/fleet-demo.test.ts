import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFleetDemo } from '../../demo/fleet-demo.ts';
import { Mosquitto } from '../../demo/mosquitto.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';

const BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));

describe('trustroll demo: device processes over MQTT with live mutual TLS', function () {
  this.timeout(180_000);

  it('six-step over the embedded broker (the CLI, --json): complete, 0 of >= 1,000 handshakes failed, cross-stack clean', () => {
    const r = spawnSync(process.execPath, [BIN, 'demo', '--servers', '3', '--clients', '6', '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const d = JSON.parse(r.stdout);
    assert.equal(d.rotation.status, 'complete');
    assert.equal(d.rotation.devices, 9);
    assert.ok(d.handshakes.attempted >= 1000, `${d.handshakes.attempted} handshakes`);
    assert.equal(d.handshakes.failed, 0, d.handshakes.failures.join('\n'));
    assert.equal(d.handshakes.fallbacks, 0, 'six-step: P1 lands before any client presents Cn');
    for (const stack of ['openssl', 'gnutls']) {
      assert.ok(d.crossStack[stack].attempted >= 18 * 7, `${stack}: every pair at every boundary`);
      assert.equal(d.crossStack[stack].failed, 0, d.crossStack.failures.join('\n'));
    }
  });

  it('batched through a real Mosquitto: complete, 0 failed, fallbacks until B2 lands', async () => {
    const r = await runFleetDemo({ servers: 2, clients: 4, schedule: 'batched', naive: false, broker: 'mosquitto', paceMs: 200, minHandshakes: 600 });
    assert.equal(r.rotation.status, 'complete', r.rotation.error ?? '');
    assert.match(r.broker, /^mosquitto /);
    assert.ok(r.handshakes.attempted >= 600);
    assert.equal(r.handshakes.failed, 0, r.handshakes.failures.join('\n'));
    assert.ok(r.handshakes.fallbacks > 0, 'clients present Cn first and fall back until the servers trust K1');
    assert.equal(r.crossStack.openssl.failed + r.crossStack.gnutls.failed, 0, r.crossStack.failures.join('\n'));
  });

  it('--naive: real handshakes fail', async () => {
    const r = await runFleetDemo({ servers: 2, clients: 3, schedule: 'six-step', naive: true, broker: 'embedded', paceMs: 200, minHandshakes: 300 });
    assert.ok(r.handshakes.failed > 0, 'replacing everything at once breaks connections');
  });

  it('--broker mqtts://... with a management PKI from "trustroll mgmt init": an operator-run Mosquitto', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-mgmt-'));
    let broker: Mosquitto | null = null;
    try {
      const init = spawnSync(process.execPath, [BIN, 'mgmt', 'init', '--dir', join(dir, 'mgmt')], { encoding: 'utf8' });
      assert.equal(init.status, 0, init.stderr);
      assert.equal(statSync(join(dir, 'mgmt', 'ca-key.pem')).mode & 0o077, 0, 'CA key is private');
      assert.match(readFileSync(join(dir, 'mgmt', 'mosquitto-listener.conf'), 'utf8'), /use_identity_as_username true/);
      const again = spawnSync(process.execPath, [BIN, 'mgmt', 'init', '--dir', join(dir, 'mgmt')], { encoding: 'utf8' });
      assert.equal(again.status, 2, 'never overwrites an existing PKI');
      broker = await Mosquitto.start(ManagementPki.load(join(dir, 'mgmt'), new Date()));
      const r = spawnSync(process.execPath, [BIN, 'demo', '--servers', '1', '--clients', '2', '--broker', broker.url, '--mgmt', join(dir, 'mgmt'), '--min-handshakes', '100', '--json'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const d = JSON.parse(r.stdout);
      assert.equal(d.rotation.status, 'complete');
      assert.match(d.broker, /^external mqtts:/);
      assert.equal(d.handshakes.failed, 0);
      const noPki = spawnSync(process.execPath, [BIN, 'demo', '--broker', broker.url], { encoding: 'utf8' });
      assert.equal(noPki.status, 2);
      assert.match(noPki.stderr, /needs --mgmt/);
    } finally {
      await broker?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
