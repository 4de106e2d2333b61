/**
 * Proof under emulation: the agent from the unpacked arm64 image (and the
 * armv7 one), run with qemu-user on its own runtime and addons, is a device
 * of a real rotation: Mosquitto and the manager (`trustroll rotate`) on the
 * host, an emulated printer (mTLS server) and an emulated console (client),
 * next to a host printer and console. The consoles handshake with both
 * printers the whole time; every handshake must succeed. Afterwards the
 * emulated agents' own `status` and `selftest` report the new root only.
 * Runs in CI (arm64) and wherever the cross-compile cache is warm.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provisionDevice } from '../../demo/device-provisioning.ts';
import { freePort, Mosquitto } from '../../demo/mosquitto.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Role } from '../../protocol/steps.ts';
import { TARGETS, type Target } from '../../cross-compile/targets.ts';
import { emulatedAgent, type CommandLine } from '../../image/emulate.ts';
import { imageFor, imageTestSkipReason, startAgent, stopAgents, unpack, type AgentProc } from './support.ts';

const AGENT_BIN = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const MANAGER_BIN = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
const hostAgent = (args: string[]): CommandLine => ({ command: process.execPath, args: [AGENT_BIN, ...args] });

/** Runs a command to its end without blocking the event loop (the agents' output keeps flowing). */
function runAsync(cl: CommandLine, timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cl.command, cl.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
  });
}

for (const target of [TARGETS.arm64, TARGETS.armv7] as Target[]) {
  describe(`emulated ${target.arch} agent from the image in a real rotation`, function () {
    this.timeout(20 * 60_000);
    let dir = '';
    let broker: Mosquitto | null = null;
    let agents: AgentProc[] = [];

    before(function () {
      const skip = imageTestSkipReason(target);
      if (skip) {
        process.stderr.write(`      skipped: ${skip}\n`);
        this.skip();
      }
    });
    after(async () => {
      await stopAgents(agents);
      await broker?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it(`rotates an emulated ${target.arch} printer and console with host devices over Mosquitto: 0 failed handshakes`, async () => {
      const img = await imageFor(target);
      dir = mkdtempSync(join(tmpdir(), `trustroll-emu-${target.arch}-`));
      const rootfs = unpack(img.tarball);
      const emu = (args: string[]) => emulatedAgent(target, rootfs, args);
      try {
        const dataDir = join(dir, 'data');
        const mgmtDir = join(dir, 'mgmt');
        mkdirSync(dataDir, { recursive: true });
        const pki = await ManagementPki.create({ now: systemClock.now() });
        pki.save(mgmtDir);
        const ca = await CaAuthority.openOrInit(join(dataDir, 'ca'), { subject: `CN=Printer Fleet Root,O=trustroll ${target.arch} emulation test`, now: systemClock.now() });
        broker = await Mosquitto.start(pki);
        const logger = createLogger({ level: 'warn', sink: () => undefined });
        const devices: [string, Role, 'host' | 'emulated'][] = [
          ['printer-host', 'server', 'host'], [`printer-${target.arch}`, 'server', 'emulated'],
          ['console-host', 'client', 'host'], [`console-${target.arch}`, 'client', 'emulated'],
        ];
        const ports = new Map<string, number>();
        for (const [id, role] of devices) if (role === 'server') ports.set(id, await freePort());
        const db = new FleetDb(join(dataDir, 'manager.db'));
        const configs = new Map<string, string>();
        try {
          for (const [id, role] of devices) configs.set(id, await provisionDevice(dir, id, role, { pki, ca, db, brokerUrl: broker.url, ports, naive: false, logger }));
        } finally {
          db.close();
        }
        // The emulated console handshakes every 100 ms (qemu runs it about 10x slower), the host console every 25 ms.
        const emuConsole = configs.get(`console-${target.arch}`)!;
        const c = JSON.parse(readFileSync(emuConsole, 'utf8')) as { probe: { intervalMs: number } };
        c.probe.intervalMs = 100;
        writeFileSync(emuConsole, JSON.stringify(c, null, 2));

        // Servers first, so a client's first handshake finds them listening.
        for (const role of ['server', 'client'] as const) {
          const group = devices.filter(([, r]) => r === role).map(([id, r, where]) => startAgent(id, r, where === 'host' ? hostAgent : emu, configs.get(id)!));
          agents.push(...group);
          await Promise.all(group.map((a) => a.ready));
        }
        await new Promise((r) => setTimeout(r, 1_000));

        const started = Date.now();
        const rot = await runAsync({ command: process.execPath, args: [MANAGER_BIN, 'rotate', '--data', dataDir, '--mgmt', mgmtDir, '--broker', broker.url, '--schedule', 'six-step', '--json'] }, 10 * 60_000);
        assert.equal(rot.status, 0, rot.stderr + rot.stdout);
        const result = JSON.parse(rot.stdout) as { rotation: { status: string }; acked: number; total: number };
        assert.equal(result.rotation.status, 'complete');
        assert.equal(result.acked, result.total);
        process.stderr.write(`      rotation with emulated ${target.arch} devices: ${result.total} steps in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
        await new Promise((r) => setTimeout(r, 1_500));

        // The emulated agents' own checks while they run: the new root only, nothing left to do, every check passes.
        // All four are read-only and independent: they run at the same time (each waits on qemu's start and on live handshakes).
        await Promise.all([`printer-${target.arch}`, `console-${target.arch}`].map(async (id) => {
          const [st, self] = await Promise.all([
            runAsync(emu(['status', '--config', configs.get(id)!, '--json']), 180_000),
            runAsync(emu(['selftest', '--config', configs.get(id)!, '--json']), 240_000),
          ]);
          assert.equal(st.status, 0, st.stderr);
          const s = JSON.parse(st.stdout) as { trust: unknown[]; rotation: { remaining: string[] } | null; agent?: { state: string } };
          assert.equal(s.trust.length, 1, `${id} holds one root`);
          assert.deepEqual(s.rotation?.remaining, []);
          assert.equal(s.agent?.state, 'running');
          assert.equal(self.status, 0, self.stdout + self.stderr);
          assert.equal((JSON.parse(self.stdout) as { ok: boolean }).ok, true);
        }));

        const tallies = await stopAgents(agents);
        agents = [];
        for (const id of ['console-host', `console-${target.arch}`]) {
          const t = tallies.get(id);
          assert.ok(t, `${id} reported its handshakes`);
          assert.ok(t.attempted > 10, `${id} handshook throughout (${t.attempted})`);
          assert.equal(t.failed, 0, `${id}: ${JSON.stringify(t.failures)}`);
          process.stderr.write(`      ${id}: ${t.attempted} mutual-TLS handshakes, ${t.failed} failed, ${t.fallbacks} fell back to the old certificate\n`);
        }
      } finally {
        rmSync(rootfs, { recursive: true, force: true });
      }
    });
  });
}
