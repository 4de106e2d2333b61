/**
 * `trustroll-agent run` stops cleanly whenever SIGTERM arrives: while it
 * is still linking to the broker (systemd stopping a device whose broker
 * does not answer), and at the moment it printed ready (a supervisor that
 * stops it as soon as it reads that line). Before the stop listener was
 * installed at start, either signal could kill the process outright: the
 * first test fails on that code every time; the second is the race the
 * parallel suite hit now and then (a restarted console stopped 0.5 s after
 * it started lost its tally), checked three times over.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevice } from '../../demo/device-process.ts';
import { provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';
import { Mosquitto } from '../../demo/mosquitto.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Role } from '../../protocol/steps.ts';

/** Every stdout line of `p`, and how it ended. */
function watch(p: ReturnType<typeof startDevice>) {
  const lines: string[] = [];
  p.proc.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.proc.once('exit', (code, signal) => r({ code, signal })));
  return { lines, exited, events: () => lines.map((l) => { try { return (JSON.parse(l) as { event?: string }).event; } catch { return undefined; } }) };
}

describe('trustroll-agent run: stop on SIGTERM', function () {
  this.timeout(90_000);
  let dir: string;
  let pki: ManagementPki;
  let ca: CaAuthority;
  let db: FleetDb;
  let mosquitto: Mosquitto;
  let silent: Server;
  const held: Socket[] = [];
  const logger = createLogger({ level: 'error' });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-agent-stop-'));
    pki = await ManagementPki.create({ now: new Date() });
    ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll test', now: new Date() });
    db = new FleetDb(join(dir, 'manager.db'));
    mosquitto = await Mosquitto.start(pki);
    // A "broker" that accepts TCP and never answers: the agent's link waits on it.
    silent = createServer((s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
    await mosquitto.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('SIGTERM while linking to a broker that does not answer: stops at once, exit 0, "stopped" and no "ready"', async () => {
    const port = (silent.address() as { port: number }).port;
    const ids: [string, Role][] = [['printer-1', 'server']];
    const config = await provisionDevice(dir, 'printer-1', 'server', { pki, ca, db, brokerUrl: `mqtts://127.0.0.1:${port}`, ports: await serverPorts(ids), naive: false, logger });
    const connected = new Promise<void>((r) => silent.once('connection', () => r()));
    const p = startDevice('printer-1', 'server', join(dir, 'devices', 'printer-1'), config);
    const w = watch(p);
    await connected;
    const sent = Date.now();
    p.proc.kill('SIGTERM');
    const end = await w.exited;
    assert.deepEqual(end, { code: 0, signal: null }, 'a clean exit, not killed by the signal');
    assert.ok(Date.now() - sent < 10_000, `stopped within 10 s, not after the link's 30 s wait (${Date.now() - sent} ms)`);
    assert.deepEqual(w.events().filter((e) => e === 'ready' || e === 'stopped'), ['stopped']);
  });

  it('SIGTERM sent the moment "ready" is read: a clean stop with the tally, every time', async () => {
    const ids: [string, Role][] = [['console-1', 'client']];
    const config = await provisionDevice(dir, 'console-1', 'client', { pki, ca, db, brokerUrl: mosquitto.url, ports: await serverPorts(ids), naive: false, logger });
    for (let i = 0; i < 3; i++) {
      const p = startDevice('console-1', 'client', join(dir, 'devices', 'console-1'), config);
      const w = watch(p);
      p.proc.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('"event":"ready"')) p.proc.kill('SIGTERM'); });
      const end = await w.exited;
      assert.deepEqual(end, { code: 0, signal: null }, `run ${i + 1}: a clean exit`);
      assert.deepEqual(w.events().filter((e) => e === 'ready' || e === 'stopped'), ['ready', 'stopped'], `run ${i + 1}`);
      assert.ok(await p.stopped, `run ${i + 1}: the final tally`);
    }
  });
});
