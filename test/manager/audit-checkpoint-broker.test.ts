import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { Mosquitto } from '../../demo/mosquitto.ts';
import { CheckpointStore, dataFolderPublicKey } from '../../manager/audit/audit-checkpoint-store.ts';
import { openCheckpoint, type AuditCheckpoint } from '../../manager/audit/audit-note.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { openManager, type Manager } from '../../manager/manager.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { createLogger } from '../../protocol/log.ts';
import { AUDIT_CHECKPOINT_TOPIC, MANAGER_IDENTITY, mayPublish, mayReceive, maySubscribe, mosquittoAcl } from '../../protocol/topics.ts';

/** A broker client that keeps every message of the checkpoint topic (with its retain flag). */
async function reader(url: string, pki: ManagementPki, id: string): Promise<{ client: MqttClient; got: { note: string; retained: boolean }[] }> {
  const identity = pki.device(id);
  const client = connect(url, { ca: pki.ca, cert: identity.cert, key: identity.key, rejectUnauthorized: true, protocolVersion: 4, clean: true, reconnectPeriod: 0 });
  const got: { note: string; retained: boolean }[] = [];
  client.on('message', (_topic, payload, packet) => got.push({ note: payload.toString('utf8'), retained: packet.retain }));
  await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject); });
  const granted = await client.subscribeAsync(AUDIT_CHECKPOINT_TOPIC, { qos: 1 });
  assert.notEqual(granted[0]?.qos, 128, 'the auditor may read the checkpoint topic');
  return { client, got };
}

/** Wait until `pred` holds (polling), or fail naming `what`. */
async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('audit checkpoints on the broker: a retained copy outside the data folder (Mosquitto)', function () {
  this.timeout(60_000);
  let dir: string;
  let broker: Mosquitto | undefined;
  let manager: Manager | undefined;
  const clients: MqttClient[] = [];
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-ckpt-broker-')); });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true);
    await manager?.close();
    manager = undefined;
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('only the manager writes the topic; the ACL lets it, devices neither read nor write it', () => {
    assert.ok(mayPublish(MANAGER_IDENTITY, AUDIT_CHECKPOINT_TOPIC) && mayReceive(MANAGER_IDENTITY, AUDIT_CHECKPOINT_TOPIC) && maySubscribe(MANAGER_IDENTITY, AUDIT_CHECKPOINT_TOPIC));
    assert.ok(!mayPublish('cli-1', AUDIT_CHECKPOINT_TOPIC) && !mayReceive('cli-1', AUDIT_CHECKPOINT_TOPIC) && !maySubscribe('cli-1', AUDIT_CHECKPOINT_TOPIC));
    assert.match(mosquittoAcl(), /^user trustroll-manager\n(?:.*\n)*?topic readwrite trustroll\/v1\/manager\/audit\/checkpoint$/m);
  });

  it('the manager publishes every checkpoint it signs, retained; it outlives the manager', async () => {
    const pki = await ManagementPki.create({ now: new Date() });
    // An auditor's broker identity with read access to the topic only (docs/audit.md).
    broker = await Mosquitto.start(pki, { acl: `${mosquittoAcl()}\nuser auditor\ntopic read ${AUDIT_CHECKPOINT_TOPIC}\n` });
    const data = join(dir, 'data');
    await CaAuthority.openOrInit(join(data, 'ca'), { subject: 'CN=Checkpoint Test Root', now: new Date() });
    manager = await openManager({ dataDir: data, pki, brokerUrl: broker.url, logger: createLogger({ level: 'error' }) });
    await manager.transport.ready(15_000);
    const key = dataFolderPublicKey(data)!;
    const live = await reader(broker.url, pki, 'auditor');
    clients.push(live.client);
    const opened = (): AuditCheckpoint[] => live.got.map((m) => openCheckpoint(m.note, key));
    await until(() => opened().some((c) => c.size === 0), 'the checkpoint of the empty log made at open');

    manager.audit.append({ actor: 'operator:alice', action: 'operator.pause' }, new Date());
    manager.audit.append({ actor: 'manager', action: 'rotation.complete', rotationId: 'rot-1' }, new Date());
    await until(() => opened().some((c) => c.size === 2), 'the checkpoint made at the rotation\'s end');
    assert.equal(live.got.find((m) => openCheckpoint(m.note, key).size === 2)!.note, new CheckpointStore(data).newest(), 'the same note as the data folder\'s newest');

    // Not a rotation's start or end: only the timer (5 minutes) or the manager's stop signs it.
    manager.audit.append({ actor: 'operator:alice', action: 'operator.resume' }, new Date());
    await manager.close();
    manager = undefined;
    const later = await reader(broker.url, pki, 'auditor');
    clients.push(later.client);
    await until(() => later.got.length > 0, 'the retained checkpoint');
    assert.equal(later.got[0]!.retained, true);
    assert.equal(openCheckpoint(later.got[0]!.note, key).size, 3, 'the checkpoint signed as the manager stopped reached the broker, and stays after it left');
  });
});
