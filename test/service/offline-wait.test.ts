/**
 * Issue 21 item 7, end to end: under the default `wait` policy an offline
 * device never fails a rotation, and an online device that does not answer
 * still does. `trustroll serve` with agent processes over Mosquitto, a
 * short ackTimeout and a small maxAttempts so that "stopped for longer than
 * ackTimeout x maxAttempts x 3" takes seconds.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import type { AuditPage, FleetPage, RotationDetail, RotationSummary } from '../../manager/http/api-types.ts';
import { ServiceFleet } from '../support/service-fleet.ts';

const ACK_MS = 500;
const MAX_ATTEMPTS = 3;
const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('offline devices never fail a rotation under the default wait policy; silent online ones still do (agent processes, Mosquitto, trustroll serve)', function () {
  this.timeout(240_000);
  let fleet: ServiceFleet;
  before(async () => { fleet = await ServiceFleet.create({ servers: 2, clients: 2, ackTimeoutMs: ACK_MS, maxAttempts: MAX_ATTEMPTS }); });
  after(async () => { await fleet?.close(); });

  const rotation = async (id: string) => (await fleet.api<RotationDetail>(`/api/rotations/${id}`)).body;
  const clients = async () => (await fleet.api<FleetPage>('/api/fleet')).body.devices;
  const p2Of = (id: string, deviceId: string) => {
    const db = new FleetDb(join(fleet.dataDir, 'manager.db'));
    try {
      return db.steps(id).find((r) => r.deviceId === deviceId && r.step === 'P2')!;
    } finally {
      db.close();
    }
  };

  it(`a console stopped for ackTimeout x maxAttempts x 3 (${ACK_MS} ms x ${MAX_ATTEMPTS} x 3): the rotation keeps running and names it (offline); it completes once the console is back, no handshake failed`, async () => {
    await fleet.until('every device online', async () => (await fleet.api<FleetPage>('/api/fleet')).body.counts.online === 4);
    await fleet.killDevice('console-2');
    await fleet.until('console-2 offline', async () => (await fleet.api<FleetPage>('/api/fleet?presence=offline')).body.devices.some((d) => d.id === 'console-2'));
    // Started with `trustroll rotate` (through the service, output to a pipe): its progress lines are checked at the end.
    const cli = spawn(process.execPath, [MANAGER_BIN, 'rotate', '--data', fleet.dataDir, '--mgmt', fleet.mgmtDir, '--schedule', 'six-step'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    cli.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    cli.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const exited = new Promise<number | null>((r) => cli.once('exit', r));
    const id = await fleet.until('rotate started', async () => /runs rotation (\S+);/.exec(err)?.[1], 30_000);
    const sentAt = Date.now();
    await fleet.until('console-2 P2 held', async () => p2Of(id, 'console-2').errorCode === 'E_DEVICE_OFFLINE');
    await sleep(Math.max(0, sentAt + ACK_MS * MAX_ATTEMPTS * 3 - Date.now()));

    const d = await rotation(id);
    assert.equal(d.status, 'running', `still running after ${Date.now() - sentAt} ms: ${d.error ?? ''}`);
    const p4 = d.waits.filter((w) => w.step === 'P4');
    assert.equal(p4.length, 2, 'both printers\' P4 wait');
    for (const w of p4) assert.ok(w.waitingFor.some((b) => b.deviceId === 'console-2' && b.step === 'P2' && b.online === false), `${w.deviceId} P4 names console-2 P2, offline`);
    assert.deepEqual([d.blockers[0]!.deviceId, d.blockers[0]!.online, d.blockers[0]!.lastError?.code], ['console-2', false, 'E_DEVICE_OFFLINE'], 'the offline console is named first, and why nothing is resent');
    const held = p2Of(id, 'console-2');
    assert.equal(held.attempts, 1, 'no attempt spent on the offline console (one send, no resend)');
    const status = spawnSync(process.execPath, [MANAGER_BIN, 'status', '--data', fleet.dataDir, '--rotation', id], { encoding: 'utf8' });
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /console-2 \(client\): P2=held:offline/, status.stdout);
    assert.ok(fleet.serviceLog.some((l) => l.includes('step held') && l.includes('"deviceId":"console-2"')), 'the hold is logged');
    const heldEntries = (await fleet.api<AuditPage>(`/api/audit?rotation=${id}&limit=1000`)).body.entries.filter((e) => e.action === 'step.held');
    assert.deepEqual(heldEntries.map((e) => [e.deviceId, e.step, e.code, (e.detail as { attempts: number }).attempts]), [['console-2', 'P2', 'E_DEVICE_OFFLINE', 1]], 'the hold is audited once, with no attempt spent');

    // A printer counts the handshake the killed console left half-done as failed: its tally before the console's return is the baseline
    // (reported with its P1, after the kill). The consoles' own tallies must show no failure at all.
    const printersBefore = new Map((await clients()).filter((c) => c.role === 'server').map((c) => [c.id, c.tls?.failed ?? 0]));
    await fleet.restartDevice('console-2');
    const done = await fleet.until('rotation complete', async () => {
      const r = await rotation(id);
      assert.notEqual(r.status, 'failed', r.error ?? '');
      return r.status === 'complete' ? r : null;
    }, 120_000);
    assert.equal(done.acked, done.total);
    assert.ok(p2Of(id, 'console-2').attempts <= 2, `console-2's return cost at most the one resend: ${p2Of(id, 'console-2').attempts}`);
    // Both consoles handshake again under the new certificates; no handshake failed.
    const before = new Map((await clients()).map((c) => [c.id, c.tls?.ok ?? 0]));
    await fleet.until('every console handshakes after the rotation', async () => (await clients()).filter((c) => c.role === 'client').every((c) => (c.tls?.ok ?? 0) > (before.get(c.id) ?? 0) + 2), 60_000);
    for (const c of await clients()) {
      if (c.role === 'client') assert.equal(c.tls?.failed ?? 0, 0, `${c.id}: ${JSON.stringify(c.tls)}`);
      else assert.equal(c.tls?.failed ?? 0, printersBefore.get(c.id), `${c.id}: no handshake failed from console-2's return to the end: ${JSON.stringify(c.tls)}`);
    }

    // trustroll rotate, not on a terminal: a progress line only when something changed, naming who holds the rotation up.
    assert.equal(await exited, 0, err + out);
    const progress = out.split('\n').filter((l) => l.startsWith(`${id}: `));
    assert.ok(progress.length >= 2, out);
    assert.ok(progress.every((l, i) => i === 0 || l !== progress[i - 1]), `no line repeated: ${progress.join(' | ')}`);
    assert.ok(progress.some((l) => /steps acknowledged; waiting for console-2 P2 \(offline\)/.test(l)), progress.join('\n'));
    assert.ok(!out.includes('\r') && !out.includes('\x1b'), 'no terminal control sequences in a pipe');
    assert.match(out, new RegExp(`rotation ${id} \\(six-step\\): complete`));
  });

  it('control: a console online but not answering (its agent frozen with SIGSTOP, its MQTT session still up) stops the rotation after maxAttempts with E_ACK_TIMEOUT', async () => {
    const frozen = fleet.devices.get('console-1')!.proc;
    frozen.kill('SIGSTOP');
    try {
      const start = await fleet.api<RotationSummary>('/api/rotations', { body: { schedule: 'six-step' } });
      assert.equal(start.status, 201, start.text);
      const failed = await fleet.until('rotation failed', async () => {
        const r = await rotation(start.body.id);
        return r.status === 'failed' ? r : null;
      }, 60_000);
      assert.match(failed.error ?? '', new RegExp(`console-1 step P2 failed ${MAX_ATTEMPTS} times \\(E_ACK_TIMEOUT: .*online`));
      const line = (await clients()).find((c) => c.id === 'console-1')!;
      assert.equal(line.online, true, 'presence still says online: the broker has not given up on its session');
      assert.equal(p2Of(start.body.id, 'console-1').attempts, MAX_ATTEMPTS);
    } finally {
      frozen.kill('SIGCONT');
    }
  });
});
