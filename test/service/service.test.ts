import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import type { FleetPage, Me, RotationDetail, RotationSummary } from '../../manager/http/api-types.ts';
import { AuditLog } from '../../manager/audit/audit-log.ts';
import { verifyAudit } from '../../manager/audit/audit-check.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

type Metric = { name: string; type: string; metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }[] };

describe('trustroll serve: a real fleet of agent processes over Mosquitto, driven through the HTTPS API', function () {
  this.timeout(240_000);
  let fleet: ServiceFleet;
  before(async () => { fleet = await ServiceFleet.create({ servers: 2, clients: 3, ackTimeoutMs: 2000 }); });
  after(async () => { await fleet?.close(); });

  const dbRead = <T>(fn: (db: FleetDb, audit: AuditLog) => T): T => {
    const db = new FleetDb(join(fleet.dataDir, 'manager.db'));
    try {
      return fn(db, new AuditLog(db));
    } finally {
      db.close();
    }
  };

  it('refuses anonymous and read-only actions (401/403) and changes nothing', async () => {
    const anon = await fleet.api('/api/fleet', { as: 'none' });
    assert.equal(anon.status, 401);
    assert.equal((anon.body as { error: { code: string } }).error.code, 'E_AUTH_REQUIRED');
    const page = await fleet.api('/', { as: 'none' });
    assert.equal(page.status, 401);
    assert.match(page.text, /operator certificate/);
    for (const as of ['none', 'viewer', 'token'] as const) {
      const r = await fleet.api('/api/rotations', { as, body: { schedule: 'six-step' } });
      assert.equal(r.status, as === 'none' ? 401 : 403, `${as}: ${r.text}`);
    }
    const bad = await fleet.api('/api/rotations', { body: { schedule: 'naive' } });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { error: { code: string } }).error.code, 'E_BAD_REQUEST');
    assert.equal(dbRead((db) => db.rotations().length), 0, 'no rotation was started');
    const me = await fleet.api<Me>('/api/me', { as: 'viewer' });
    assert.deepEqual(me.body, { name: 'operator:bob', role: 'read', via: 'certificate' });
  });

  it('follows presence; names the offline device a step waits for; a running rotation survives a restart of the service', async () => {
    await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet', { as: 'token' })).body.counts.online === 5);
    for (const d of (await fleet.api<FleetPage>('/api/fleet')).body.devices) assert.deepEqual(d.accepts, ['issuerChain', 'oldWithNew'], `${d.id}: its agent reported the optional step fields it applies`);
    await fleet.killDevice('console-3');
    await fleet.until('console-3 offline', async () => (await fleet.api<FleetPage>('/api/fleet?presence=offline')).body.devices.some((d) => d.id === 'console-3'));
    const start = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'six-step' } });
    assert.equal(start.status, 201, start.text);
    const id = start.body.id;
    const waiting = await fleet.until('P4 of a printer waits for P2 of console-3', async () => {
      const d = (await fleet.api<RotationDetail>(`/api/rotations/${id}`)).body;
      return d.waits.find((w) => w.step === 'P4' && w.waitingFor.some((b) => b.deviceId === 'console-3' && b.step === 'P2' && b.online === false)) ? d : null;
    });
    assert.ok(waiting.blockers[0]!.deviceId === 'console-3' && waiting.blockers[0]!.online === false, 'the offline device is named first');
    assert.ok(waiting.blockers[0]!.since, 'and since when it is offline');
    // Restart the service mid-rotation: SIGTERM exits cleanly and the rotation picks up again.
    assert.equal(await fleet.stopService(), 0);
    assert.equal(existsSync(join(fleet.dataDir, 'service.json')), false, 'service.json removed on shutdown');
    await fleet.startService();
    assert.equal((await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.status, 'running');
    await fleet.restartDevice('console-3');
    const done = await fleet.until('rotation complete', async () => {
      const r = (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body;
      return r.status === 'complete' ? r : null;
    }, 120_000);
    assert.equal(done.acked, done.total);
    const fleetPage = (await fleet.api<FleetPage>('/api/fleet')).body;
    for (const d of fleetPage.devices) {
      assert.equal(d.stepStatus, 'done', d.id);
      await fleet.until(`${d.id} reports R1 only`, async () => {
        const line = (await fleet.api<{ device: FleetPage['devices'][number] }>(`/api/devices/${d.id}`)).body.device;
        return line.trusts.length === 1 && line.trusts[0]!.label === 'R1';
      });
    }
    const audit = dbRead((_db, log) => ({ report: verifyAudit(log.all()), start: log.entries({ limit: 10_000 }).find((e) => e.action === 'operator.start') }));
    assert.equal(audit.report.chain, null, 'the audit hash chain is intact');
    assert.deepEqual(audit.report.violations, [], 'every step waited for its prerequisites');
    assert.equal(audit.report.sendsChecked, 15, 'every first send of the 15 device-steps checked');
    assert.equal(audit.start?.actor, 'operator:alice');
  });

  it('metrics match the database', async () => {
    const r = await fleet.api('/metrics', { as: 'token' });
    assert.equal(r.status, 200);
    const metrics = parsePrometheus(r.text) as Metric[];
    const get = (name: string) => metrics.find((m) => m.name === name)!;
    const { acked, withSent, rotationId } = dbRead((db) => {
      const rot = db.rotations().at(-1)!;
      const rows = db.steps(rot.id);
      return { rotationId: rot.id, acked: rows.filter((s) => s.status === 'acked').length, withSent: db.db.prepare("SELECT COUNT(*) AS n FROM steps WHERE status = 'acked' AND sent_at IS NOT NULL").get() as { n: number } };
    });
    const steps = get('trustroll_rotation_steps').metrics.filter((m) => m.labels!.rotation === rotationId && m.labels!.status === 'acked');
    assert.equal(steps.reduce((a, m) => a + Number(m.value), 0), acked);
    assert.equal(get('trustroll_step_latency_seconds').type, 'HISTOGRAM');
    // parse-prometheus-text-format merges the label sets of a histogram; the per-step _count samples are read from the text.
    const counts = [...r.text.matchAll(/^trustroll_step_latency_seconds_count\{step="(P\d|B\d)"\} (\d+)$/gm)];
    assert.ok(counts.length >= 6, 'one count per step');
    assert.equal(counts.reduce((a, m) => a + Number(m[2]), 0), withSent.n);
    const online = get('trustroll_devices').metrics.filter((m) => m.labels!.presence === 'online').reduce((a, m) => a + Number(m.value), 0);
    assert.equal(online, (await fleet.api<FleetPage>('/api/fleet')).body.counts.online);
    const resends = dbRead((_db, sdb) => sdb.counts('step.resent').get('') ?? 0);
    assert.equal(Number(get('trustroll_step_resends_total').metrics[0]?.value ?? 0), resends);
    assert.ok(resends > 0, 'the offline client was resent its step');
    const handshakes = get('trustroll_agent_handshakes');
    assert.ok(handshakes.metrics.some((m) => m.labels!.role === 'client' && m.labels!.result === 'ok' && Number(m.value) > 0), 'agents report their handshakes');
  });

  it('"trustroll rotate" on the same data folder hands the rotation to the running service (one MQTT session per manager)', async () => {
    await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet', { as: 'token' })).body.counts.online === 5);
    const bin = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
    const proc = spawn(process.execPath, [bin, 'rotate', '--data', fleet.dataDir, '--mgmt', fleet.mgmtDir, '--schedule', 'six-step', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const code = await new Promise<number | null>((r) => proc.once('exit', r));
    assert.equal(code, 0, err + out);
    assert.match(err, /trustroll serve \(pid \d+\) runs rotation/);
    const st = JSON.parse(out) as { rotation: { id: string; status: string } };
    assert.equal(st.rotation.status, 'complete');
    const started = dbRead((_db, sdb) => sdb.entries({ limit: 10_000 }).find((e) => e.action === 'operator.start' && e.actor.startsWith('cli:')));
    assert.ok(started, 'recorded as started by the local CLI user');
  });
  it('pause holds; abort rolls back (no other rotation meanwhile) and closes it; excluding an offline device lets its peers go on; pause and resume', async () => {
    const start = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'batched' } });
    assert.equal(start.status, 201, start.text);
    const id = start.body.id;
    const paused = await fleet.api<RotationSummary>(`/api/rotations/${id}/pause`, { body: {} });
    assert.equal(paused.body.status, 'paused', paused.text);
    const aborted = await fleet.api<RotationSummary>(`/api/rotations/${id}/abort`, { body: {} });
    assert.equal(aborted.body.status, 'rolling-back', aborted.text);
    const refused = await fleet.api<{ error: { code: string; message: string } }>('/api/rotations', { body: { schedule: 'six-step' } });
    if (dbRead((db) => db.rotation(id)!.status) === 'rolling-back') {
      assert.equal(refused.status, 409, refused.text);
      assert.equal(refused.body.error.code, 'E_ROTATION_ACTIVE');
      assert.match(refused.body.error.message, new RegExp(`${id}.*resume`));
    }
    await fleet.until('rolled back', async () => (await fleet.api<RotationSummary>(`/api/rotations/${id}`)).body.status === 'rolled-back');

    const next = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'batched' } });
    assert.equal(next.status, 201, next.text);
    const id2 = next.body.id;
    assert.equal((await fleet.api<RotationSummary>(`/api/rotations/${id2}/pause`, { body: {} })).body.status, 'paused');
    await fleet.killDevice('console-2');
    await fleet.until('console-2 offline', async () => (await fleet.api<FleetPage>('/api/fleet?presence=offline')).body.devices.some((d) => d.id === 'console-2'));
    const resumed = await fleet.api<RotationSummary>(`/api/rotations/${id2}/resume`, { body: {} });
    assert.equal(resumed.body.status, 'running', resumed.text);
    const viewerExclude = await fleet.api(`/api/devices/console-2/exclude`, { as: 'viewer', body: { reason: 'switched off for the holidays' } });
    assert.equal(viewerExclude.status, 403);
    const ex = await fleet.api<{ excluded: boolean }>(`/api/devices/console-2/exclude`, { body: { reason: 'switched off for the holidays' } });
    assert.equal(ex.status, 200, ex.text);
    assert.equal(ex.body.excluded, true);
    const done = await fleet.until('rotation complete without console-2', async () => {
      const r = (await fleet.api<RotationSummary>(`/api/rotations/${id2}`)).body;
      return r.status === 'complete' ? r : null;
    }, 120_000);
    assert.ok(done.excluded > 0);
    const entries = dbRead((_db, sdb) => [...sdb.entries({ limit: 10_000, rotationId: id }), ...sdb.entries({ limit: 10_000, rotationId: id2 })].map((e) => `${e.actor} ${e.action}`));
    for (const want of ['operator:alice operator.pause', 'operator:alice operator.abort', 'manager rotation.rollback-started', 'manager rotation.rolled-back', 'operator:alice operator.resume', 'operator:alice operator.exclude', 'manager rotation.complete']) {
      assert.ok(entries.includes(want), `audit has "${want}"`);
    }
  });

});

describe('manager systemd unit', () => {
  it('passes systemd-analyze verify where systemd-analyze exists', function () {
    const unit = fileURLToPath(new URL('../../manager/systemd/trustroll-manager.service', import.meta.url));
    const probe = spawnSync('systemd-analyze', ['--version']);
    if (probe.error) this.skip();
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /trustroll-manager\.service.*(Unknown|Invalid|Failed)/i);
  });
});

