/**
 * Footprint benchmark: prints one JSON object with the agent bundle's size,
 * each image's size, and the agent's start time and idle RSS next to a bare
 * `node` process started the same way, on x86 (built bundle; the tsx
 * development launcher for comparison) and under qemu arm64 (the image's
 * runtime, bundle and addons). Targets: bundle < 1 MB without runtime and
 * addons; idle RSS <= 1.3x bare Node.
 *   node --import tsx bench/footprint.ts [arm64,armv7 | none]
 * The agent runs with the launcher's Node flags (AGENT_NODE_FLAGS, as in the
 * image); FOOTPRINT_NODE_FLAGS="--max-semi-space-size=1 …" tries more on the x86 agent.
 * "Idle" is a server-role agent linked to a local Mosquitto over mTLS with
 * its TLS service listening, 5 s after it reported ready. Under qemu the RSS
 * is the emulator process's (it includes qemu and its translation cache).
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AGENT_ADDONS } from '../cross-compile/addons.ts';
import { ADDON_DIR, AGENT_NODE_FLAGS, BUNDLE_FILE, bundleAgent } from '../cross-compile/bundle.ts';
import { OUT_DIR, REPO_ROOT } from '../cross-compile/paths.ts';
import { targetOf } from '../cross-compile/targets.ts';
import { buildImage, type ImageBuild } from '../image/build.ts';
import { emulatedAgent, emulatedNode, emulationUnavailable, type CommandLine } from '../image/emulate.ts';
import { provisionDevice } from '../demo/device-provisioning.ts';
import { freePort, Mosquitto } from '../demo/mosquitto.ts';
import { CaAuthority } from '../manager/ca-authority.ts';
import { FleetDb } from '../manager/fleet-db.ts';
import { ManagementPki } from '../manager/management-pki.ts';
import { systemClock } from '../protocol/clock.ts';
import { createLogger } from '../protocol/log.ts';

const RUNS = 5;
const IDLE_MS = 5_000;
const MB = (b: number) => Number((b / 1e6).toFixed(2));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median wall time (ms) of a command run to its end. */
function timeRuns(cl: CommandLine, runs = RUNS): number {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(cl.command, cl.args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cl.command} ${cl.args.join(' ')}: ${r.stderr}`);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return Math.round(median(ms));
}

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

/** Starts a long-running command, waits until `ready(line)` (or a fixed delay), idles, reads its RSS, stops it. */
async function idleRss(cl: CommandLine, readyLine: ((line: string) => boolean) | null): Promise<{ readyMs: number; idleRssMB: number }> {
  const t = Date.now();
  const p = spawn(cl.command, cl.args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TRUSTROLL_LOG: 'warn' } });
  let err = '';
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  try {
    const readyMs = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within 120 s: ${err}`)), 120_000);
      p.once('exit', (c) => reject(new Error(`exited with ${c}: ${err}`)));
      if (!readyLine) { clearTimeout(timer); setTimeout(() => resolve(Date.now() - t), 500); return; }
      createInterface({ input: p.stdout }).on('line', (l) => { if (readyLine(l)) { clearTimeout(timer); resolve(Date.now() - t); } });
    });
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return { readyMs, idleRssMB: MB(rssKb(p.pid!) * 1024) };
  } finally {
    p.kill('SIGTERM');
    await new Promise((r) => { if (p.exitCode !== null) r(null); else p.once('exit', r); setTimeout(r, 20_000).unref(); });
    if (p.exitCode === null) p.kill('SIGKILL');
  }
}

const isReady = (l: string) => l.includes('"event":"ready"') && l.includes('"linked":true');
const IDLE_NODE = ['-e', 'setInterval(() => {}, 1 << 30)'];

const archs = (process.argv[2] ?? 'arm64,armv7').split(',').filter((a) => a && a !== 'none').map(targetOf);
const work = mkdtempSync(join(tmpdir(), 'trustroll-footprint-'));
let broker: Mosquitto | null = null;
try {
  // The bundle on x86: the same file as in the images, with this host's addons beside it.
  const bundle = await bundleAgent(join(OUT_DIR, 'x64-bundle'));
  mkdirSync(join(OUT_DIR, 'x64-bundle', ADDON_DIR), { recursive: true });
  for (const a of AGENT_ADDONS) copyFileSync(join(REPO_ROOT, 'node_modules', a.pkg, 'build', 'Release', a.file), join(OUT_DIR, 'x64-bundle', ADDON_DIR, a.file));
  // The launcher's flags (AGENT_NODE_FLAGS), then any tried on top.
  const flags = [...AGENT_NODE_FLAGS, ...(process.env.FOOTPRINT_NODE_FLAGS ?? '').split(' ').filter(Boolean)];
  const x64Bundle = (args: string[]): CommandLine => ({ command: process.execPath, args: [...flags, bundle.file, ...args] });
  const x64Tsx = (args: string[]): CommandLine => ({ command: process.execPath, args: [join(REPO_ROOT, 'bin', 'trustroll-agent.mjs'), ...args] });

  const images: Record<string, ImageBuild> = {};
  for (const t of archs) images[t.arch] = await buildImage(t);

  // One provisioned server-role device, linked to a local Mosquitto.
  const pki = await ManagementPki.create({ now: systemClock.now() });
  const ca = await CaAuthority.openOrInit(join(work, 'ca'), { subject: 'CN=Footprint Root', now: systemClock.now() });
  broker = await Mosquitto.start(pki);
  const db = new FleetDb(join(work, 'manager.db'));
  const config = await provisionDevice(work, 'printer-footprint', 'server', { pki, ca, db, brokerUrl: broker.url, ports: new Map([['printer-footprint', await freePort()]]), naive: false, logger: createLogger({ level: 'warn', sink: () => undefined }) });
  db.close();

  const measure = async (agent: (args: string[]) => CommandLine, bare: CommandLine, runs = RUNS) => {
    const bareNode = { startMs: timeRuns({ command: bare.command, args: [...bare.args, '-e', '0'] }, runs), ...(await idleRss({ command: bare.command, args: [...bare.args, ...IDLE_NODE] }, null)) };
    const a = { versionMs: timeRuns(agent(['--version']), runs), ...(await idleRss(agent(['run', '--config', config]), isReady)) };
    return { bareNode: { startMs: bareNode.startMs, idleRssMB: bareNode.idleRssMB }, agent: { ...a, rssRatio: Number((a.idleRssMB / bareNode.idleRssMB).toFixed(2)) } };
  };

  const x64 = {
    node: process.version,
    nodeFlags: flags,
    ...(await measure(x64Bundle, { command: process.execPath, args: [] })),
    tsxDevelopment: { versionMs: timeRuns(x64Tsx(['--version'])), ...(await idleRss(x64Tsx(['run', '--config', config]), isReady)) },
  };

  const emulated: Record<string, unknown> = {};
  for (const t of archs) {
    const why = emulationUnavailable(t);
    if (why) { emulated[t.arch] = { skipped: why }; continue; }
    const rootfs = join(images[t.arch]!.rootfs);
    const bare = emulatedNode(t, rootfs, []);
    emulated[t.arch] = { node: `v${t.runtime.version}`, ...(await measure((args) => emulatedAgent(t, rootfs, args), bare, 3)) };
  }

  const out = {
    bundle: { bytes: bundle.bytes, mapBytes: statSync(bundle.map).size, targetBytes: 1_000_000, packages: bundle.inputs.packages.length, sourceFiles: bundle.inputs.ours.length },
    images: Object.fromEntries(Object.entries(images).map(([arch, img]) => [arch, {
      runtime: `${img.info.runtime.package}@${img.info.runtime.version}`,
      tarballMB: MB(img.bytes.tarball), squashfsMB: img.bytes.squashfs === null ? null : MB(img.bytes.squashfs), unpackedMB: MB(img.bytes.unpacked),
      nodeMB: MB(statSync(join(img.rootfs, 'opt/trustroll/bin/node')).size),
      addonsMB: MB(AGENT_ADDONS.reduce((n, a) => n + statSync(join(img.rootfs, 'opt/trustroll/lib', ADDON_DIR, a.file)).size, 0)),
      bundleBytes: statSync(join(img.rootfs, 'opt/trustroll/lib', BUNDLE_FILE)).size,
    }])),
    x64,
    emulated,
    targets: { bundleBytes: '< 1 MB', idleRss: '<= 1.3x bare node' },
    measuredAt: new Date().toISOString(),
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
} finally {
  await broker?.stop();
  rmSync(work, { recursive: true, force: true });
}
