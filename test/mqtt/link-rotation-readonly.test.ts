/**
 * The image's layout (image/README.md): the configuration and the factory's
 * link files in a read-only "etc" folder, everything the agent writes under
 * its state folder (the HAL's records and keys, the link record), the
 * health file in a runtime folder. The agent runs as an unprivileged user
 * (as root, chmod does not stop writes: the agent process then runs as
 * "nobody", owner of the state and runtime folders only). The
 * management-root rotation must complete, leave the new link material
 * under the state folder, and a restarted agent (the broker now trusts only
 * the new root, so the factory's certificate would be refused) must link
 * again from it.
 */
import { strict as assert } from 'node:assert';
import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from '../../agent/config.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { EmbeddedBroker } from '../../manager/broker/embedded-broker.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { embeddedBrokerControl } from '../../manager/link-rotation/broker-control.ts';
import { recordLinkCertificate } from '../../manager/link-rotation/link-material.ts';
import { brokerFilesNow } from '../../manager/link-rotation/broker-files.ts';
import { rotateManagementRoot } from '../../manager/link-rotation/link-rotation.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { createLogger } from '../../protocol/log.ts';
import { fingerprintPem } from '../../protocol/pem.ts';
import { fleetShape, provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';
import { cli, runAgentAs, type AgentProcess } from '../support/technician.ts';

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const ROOT = process.getuid!() === 0;
const USER = ROOT ? 65534 : process.getuid!();
const GROUP = ROOT ? 65534 : process.getgid!();

/** SHA-256 of every file under `dir`, by name. */
function digests(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name)] = createHash('sha256').update(readFileSync(join(e.parentPath, e.name))).digest('hex');
  }
  return out;
}

describe('mqtt: management-root rotation with the configuration folder read-only (the image\'s layout), agent as an unprivileged user', function () {
  this.timeout(120_000);
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', sink: (l) => lines.push(l) });
  let dir = '';
  let broker: EmbeddedBroker | null = null;
  let db: FleetDb | null = null;
  let agent: AgentProcess | null = null;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.error(lines.slice(-40).join('\n'));
    await agent?.stop();
    agent = null;
    db?.close();
    await broker?.close();
    if (dir) {
      execFileSync('chmod', ['-R', 'u+w', dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('completes with the new link CA, certificate and record under the state folder, the etc folder untouched; a restart links with them', async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-linkro-'));
    chmodSync(dir, 0o755);
    const mgmt = join(dir, 'mgmt');
    const pki = await ManagementPki.create({ now: new Date() });
    pki.save(mgmt);
    broker = await EmbeddedBroker.start({ ...brokerFilesNow(mgmt), logger, sysIntervalMs: 0 });
    mkdirSync(join(dir, 'manager'));
    const ca = await CaAuthority.openOrInit(join(dir, 'manager', 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll test', now: new Date() });
    db = new FleetDb(join(dir, 'manager', 'manager.db'));
    const ids = fleetShape(1, 0);
    const [[id, role]] = ids as [[string, 'server']];
    const provisioned = await provisionDevice(dir, id, role, { pki, ca, db, brokerUrl: broker.url, ports: await serverPorts(ids), naive: false, logger, store: 'hal-records' });
    recordLinkCertificate(mgmt, id, pki.device(id).cert);
    // The image's layout: /var/lib/trustroll (state: records, keys, link/device.key), /etc/trustroll (agent.json, link/ca.pem, device.pem, command-key.pem), /run/trustroll.
    const state = join(dir, 'devices', id);
    const etc = join(dir, 'etc');
    mkdirSync(join(etc, 'link'), { recursive: true });
    const config = JSON.parse(readFileSync(provisioned, 'utf8')) as AgentConfig & { link: NonNullable<AgentConfig['link']> };
    const moved = (from: string) => { const to = join(etc, 'link', from.split('/').pop()!); renameSync(from, to); return to; };
    config.link.ca = moved(config.link.ca);
    config.link.cert = moved(config.link.cert);
    config.link.commandKeys = Object.fromEntries(Object.entries(config.link.commandKeys).map(([k, f]) => [k, moved(f)]));
    config.runtimeDir = join(dir, 'run');
    mkdirSync(config.runtimeDir, { mode: 0o700 });
    const configPath = join(etc, 'agent.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    rmSync(provisioned);
    for (const f of Object.keys(digests(etc))) chmodSync(f, 0o444);
    chmodSync(join(etc, 'link'), 0o555);
    chmodSync(etc, 0o555);
    if (ROOT) {
      for (const d of [join(dir, 'devices'), mgmt]) chmodSync(d, 0o711);
      execFileSync('chown', ['-R', `${USER}:${GROUP}`, state, config.runtimeDir]);
    }
    const etcBefore = digests(etc);
    const oldRoot = pki.ca;

    agent = await runAgentAs(configPath, USER, GROUP);
    const result = await rotateManagementRoot({ mgmtDir: mgmt, db, brokerUrl: broker.url, logger, broker: embeddedBrokerControl(broker), ackTimeoutMs: 8_000 });
    assert.equal(result.acks, 2, 'LC1 and LC2 acknowledged');
    assert.equal(result.resent, 0);
    const newRoot = readFileSync(join(mgmt, 'ca.pem'), 'utf8');
    assert.notEqual(fingerprintPem(newRoot), fingerprintPem(oldRoot));

    assert.deepEqual(digests(etc), etcBefore, 'nothing under the configuration folder changed');
    const linkDir = join(state, 'link');
    assert.deepEqual(readFileSync(join(linkDir, 'link-ca.pem'), 'utf8').match(PEM)!.map(fingerprintPem), [fingerprintPem(newRoot)], 'the link CA under the state folder: R1 only');
    const leaf = new X509Certificate(readFileSync(join(linkDir, 'link-cert.pem'), 'utf8'));
    assert.ok(leaf.verify(new X509Certificate(newRoot).publicKey), 'the link certificate under the state folder is issued under R1');
    const sealed = JSON.parse(readFileSync(join(linkDir, 'link-state.json'), 'utf8')) as { body: string };
    assert.deepEqual((JSON.parse(sealed.body) as { rotation: { completed: string[] } }).rotation.completed, ['LC1', 'LC2']);

    // The broker trusts only R1 now: the agent can link again only with the material under the state folder.
    await agent.stop();
    agent = await runAgentAs(configPath, USER, GROUP);
    const until = Date.now() + 20_000;
    let st = await cli('status', '--config', configPath);
    while (!/link connected to/.test(st.stdout) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 300));
      st = await cli('status', '--config', configPath);
    }
    assert.match(st.stdout, /link connected to mqtts:/, st.stdout);
    assert.match(st.stdout, new RegExp(`link files: the link CA and certificate of the management-root rotation, .*in use: ${join(linkDir, 'link-state.json').replace(/[.]/g, '\\.')}, newer than the configured`), st.stdout);
    assert.deepEqual(digests(etc), etcBefore, 'still nothing written under the configuration folder');
  });
});
