/**
 * Footprint benchmark: prints one JSON object with the agent bundle's size,
 * each image's size, and the agent's start time and idle RSS next to a bare
 * `node` process started the same way, on x86 (built bundle; the tsx
 * development launcher for comparison) and under qemu arm64 (the image's
 * runtime, bundle and addons). Targets: bundle < 1 MB without runtime and
 * addons; idle RSS <= 1.3x bare Node.
 *   node --import tsx bench/footprint.ts [arm64,armv7 | none]
 * The agent runs with the launcher's Node flags and environment
 * (agentNodeFlags, AGENT_ENV, as in the image) and bare Node with the same
 * flags, executable and environment;
 * FOOTPRINT_NODE_FLAGS="--single-threaded …" tries more on both, on x86
 * and under qemu.
 * "Idle" is a server-role agent configured as the image's template (file
 * HAL, record in the HAL record store) linked to a local Mosquitto over
 * mTLS with its TLS service listening, 5 s after it reported ready (idleRssMB, the
 * target's number) and 30 s after (settledRssMB, once V8's memory reducer
 * has shrunk the heap after the start). Under qemu the RSS counted is the
 * emulated program's own mappings (guestRssKb), and the emulator process's
 * whole RSS (with qemu's translation cache) is reported beside it
 * (emulatorRssMB). The JSON's `started` shows both command lines; on x86
 * `withSqliteStore` is the same agent with its record in SQLite, and
 * `x64Node24` the same bundle and bare Node on the x64 build of the image's
 * Node 24 release (no emulator in the count).
 * Beside each RSS: flash wear (bench/flash-writes.ts), the bytes the process
 * wrote to block storage and the writes under the device's state folder
 * while idle, per hour (idleFlashBytesPerHour, target 0), and on x86
 * `underHandshakes`: the same for the printer and its client while the
 * client handshakes with it every HANDSHAKE_INTERVAL_MS.
 * `nodeTlsFloor` is the floor under any agent on that Node: a program of a
 * few lines with no trustroll code that only loads Node's TLS and holds one
 * mutually authenticated connection to its own TLS server (server and
 * client in one process), started the same way; the agent's `aboveFloorMB`
 * is what the agent itself adds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AGENT_ADDONS } from '../cross-compile/addons.ts';
import { ADDON_DIR, AGENT_ENV, agentNodeFlags, BUNDLE_FILE, bundleAgent } from '../cross-compile/bundle.ts';
import { OUT_DIR, REPO_ROOT } from '../cross-compile/paths.ts';
import { fetchRuntime } from '../cross-compile/runtime.ts';
import { HOST_NODE24, targetOf } from '../cross-compile/targets.ts';
import { buildImage, type ImageBuild } from '../image/build.ts';
import { emulatedAgent, emulatedNode, emulationUnavailable, type CommandLine } from '../image/emulate.ts';
import { provisionDevice } from '../demo/device-provisioning.ts';
import { flashWindow, underHandshakes, type FlashWindow } from './flash-writes.ts';
import { freePort, Mosquitto } from '../demo/mosquitto.ts';
import { CaAuthority } from '../manager/pki/ca-authority.ts';
import { FleetDb } from '../manager/fleet/fleet-db.ts';
import { ManagementPki, type TlsIdentity } from '../manager/pki/management-pki.ts';
import { systemClock } from '../protocol/clock.ts';
import { createLogger } from '../protocol/log.ts';

const RUNS = 5;
/** RSS is read twice: 5 s after ready (just started) and 30 s after ready (settled: V8's memory reducer has run). */
const IDLE_MS = 5_000;
const SETTLED_MS = 30_000;
const MB = (b: number) => Number((b / 1e6).toFixed(2));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median wall time (ms) of a command run to its end. */
function timeRuns(cl: CommandLine, runs = RUNS): number {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(cl.command, cl.args, { encoding: 'utf8', env: { ...process.env, ...AGENT_ENV } });
    if (r.status !== 0) throw new Error(`${cl.command} ${cl.args.join(' ')}: ${r.stderr}`);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return Math.round(median(ms));
}

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

/**
 * Under qemu-user: the resident memory of the emulated program's own
 * mappings (kB), without qemu's. qemu-aarch64-static maps itself, its
 * malloc heap, its per-thread arenas and its translated-code buffer high
 * (0x55…/0x7f… on x86-64, at or above 2^46), while the guest's mappings
 * (its Node binary, libraries, V8's heap, thread stacks) lie below 2^46:
 * qemu places them from its guest mmap base upwards and V8's address hints
 * stay below 2^46. This is the estimate of the device's RSS; the emulator's
 * RSS is reported beside it (its code cache grows with the code the guest runs).
 */
function guestRssKb(pid: number): number {
  let kb = 0;
  let guest = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ /.exec(line);
    if (m) guest = BigInt(`0x${m[1]}`) < 1n << 46n;
    else if (guest && line.startsWith('Rss:')) kb += Number(line.split(/\s+/)[1]);
  }
  return kb;
}

/**
 * Starts a long-running command, waits until `ready(line)` (or a fixed
 * delay), idles, reads its RSS, stops it. Between the two RSS readings it
 * measures what the process writes to block storage and, for an agent,
 * under its state folder `stateDir` (bench/flash-writes.ts).
 */
async function idleRss(cl: CommandLine, readyLine: ((line: string) => boolean) | null, emulated = false, stateDir?: string): Promise<{ readyMs: number; idleRssMB: number; settledRssMB: number; flash: FlashWindow; emulatorRssMB?: { idle: number; settled: number } }> {
  const t = Date.now();
  const p = spawn(cl.command, cl.args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...AGENT_ENV, TRUSTROLL_LOG: 'warn' } });
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
    const rss = () => MB((emulated ? guestRssKb(p.pid!) : rssKb(p.pid!)) * 1024);
    const idleRssMB = rss();
    const idleEmulator = MB(rssKb(p.pid!) * 1024);
    const writes = flashWindow(p.pid!, stateDir);
    await new Promise((r) => setTimeout(r, SETTLED_MS - IDLE_MS));
    const settledRssMB = rss();
    const flash = writes.end();
    return { readyMs, idleRssMB, settledRssMB, flash, ...(emulated ? { emulatorRssMB: { idle: idleEmulator, settled: MB(rssKb(p.pid!) * 1024) } } : {}) };
  } finally {
    p.kill('SIGTERM');
    await new Promise((r) => { if (p.exitCode !== null) r(null); else p.once('exit', r); setTimeout(r, 20_000).unref(); });
    if (p.exitCode === null) p.kill('SIGKILL');
  }
}

/** A command line as a shell would show it, with the repository's and temporary paths shortened. */
const shown = (cl: CommandLine) => [cl.command, ...cl.args].map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ').replaceAll(REPO_ROOT + '/', '').replace(/\/tmp\/trustroll-[^/ ]+\//g, '<tmp>/');
const isReady = (l: string) => l.includes('"event":"ready"') && l.includes('"linked":true');
const IDLE_NODE = ['-e', 'setInterval(() => {}, 1 << 30)'];

/**
 * Writes the TLS floor program (see the header) into `dir`: Node's TLS server
 * asking for client certificates, and one client connected to it with its
 * certificate, both checking the other against `ca`; it prints "floor ready"
 * once the handshake is done and then idles.
 */
function writeTlsFloor(dir: string, ca: string, server: TlsIdentity, client: TlsIdentity): string {
  const file = join(dir, 'node-tls-floor.cjs');
  writeFileSync(file, [
    "const tls = require('node:tls');",
    `const ca = ${JSON.stringify(ca)}, server = ${JSON.stringify(server)}, client = ${JSON.stringify(client)};`,
    'const srv = tls.createServer({ ...server, ca, requestCert: true, rejectUnauthorized: true }, (s) => s.resume());',
    "srv.listen(0, '127.0.0.1', () => {",
    "  const c = tls.connect({ ...client, ca, host: '127.0.0.1', port: srv.address().port, checkServerIdentity: () => undefined }, () => console.log('floor ready'));",
    '  c.on(\'error\', (e) => { console.error(e.message); process.exit(1); });',
    '});',
  ].join('\n'));
  return file;
}

const archs = (process.argv[2] ?? 'arm64,armv7').split(',').filter((a) => a && a !== 'none').map(targetOf);
const work = mkdtempSync(join(tmpdir(), 'trustroll-footprint-'));
/** The device's /run/trustroll: tmpfs (/dev/shm), as the health file is written there on the device. */
const runtimeRoot = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'trustroll-footprint-run-'));
/** The client's pause between two handshakes while the printer is measured under traffic. */
const HANDSHAKE_INTERVAL_MS = 100;
let broker: Mosquitto | null = null;
try {
  // The bundle on x86: the same file as in the images, with this host's addons beside it.
  const bundle = await bundleAgent(join(OUT_DIR, 'x64-bundle'));
  mkdirSync(join(OUT_DIR, 'x64-bundle', ADDON_DIR), { recursive: true });
  for (const a of AGENT_ADDONS) copyFileSync(join(REPO_ROOT, 'node_modules', a.pkg, 'build', 'Release', a.file), join(OUT_DIR, 'x64-bundle', ADDON_DIR, a.file));
  // The launcher's flags (agentNodeFlags), then any tried on top.
  const tried = (process.env.FOOTPRINT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const flags = [...agentNodeFlags(process.version), ...tried];
  const x64Bundle = (args: string[]): CommandLine => ({ command: process.execPath, args: [...flags, bundle.file, ...args] });
  const x64Tsx = (args: string[]): CommandLine => ({ command: process.execPath, args: [join(REPO_ROOT, 'bin', 'trustroll-agent.mjs'), ...args] });

  const images: Record<string, ImageBuild> = {};
  for (const t of archs) images[t.arch] = await buildImage(t);

  // One provisioned server-role device, linked to a local Mosquitto.
  const pki = await ManagementPki.create({ now: systemClock.now() });
  const ca = await CaAuthority.openOrInit(join(work, 'ca'), { subject: 'CN=Footprint Root', now: systemClock.now() });
  broker = await Mosquitto.start(pki);
  const db = new FleetDb(join(work, 'manager.db'));
  const device = async (id: string, store: 'hal-records' | 'sqlite') => provisionDevice(work, id, 'server', { pki, ca, db, brokerUrl: broker!.url, ports: new Map([[id, await freePort()]]), naive: false, store, logger: createLogger({ level: 'warn', sink: () => undefined }) });
  // The image's configuration keeps the record in the HAL record store; SQLite is measured beside it.
  const config = await device('printer-footprint', 'hal-records');
  const tlsFloor = writeTlsFloor(work, pki.ca, pki.broker, pki.device('printer-footprint-floor'));
  const sqliteConfig = await device('printer-footprint-sqlite', 'sqlite');
  // Handshake traffic: a client-role device that handshakes with the printer in a loop.
  const serverPort = (JSON.parse(readFileSync(config, 'utf8')) as { tls: { port: number } }).tls.port;
  const clientConfig = await provisionDevice(work, 'console-footprint', 'client', { pki, ca, db, brokerUrl: broker.url, ports: new Map([['printer-footprint', serverPort]]), naive: false, store: 'hal-records', logger: createLogger({ level: 'warn', sink: () => undefined }) });
  db.close();
  // As on the device (/run/trustroll): the health file on tmpfs, outside the persistent state folder that is watched.
  for (const file of [config, sqliteConfig, clientConfig]) {
    const c = JSON.parse(readFileSync(file, 'utf8')) as { runtimeDir?: string; probe?: { intervalMs: number } };
    c.runtimeDir = join(runtimeRoot, 'run');
    if (c.probe) c.probe.intervalMs = HANDSHAKE_INTERVAL_MS;
    writeFileSync(file, JSON.stringify(c, null, 2));
  }
  const stateDir = (file: string) => join(file, '..');

  // Both processes: the same executable (under qemu: the same emulator and sysroot), the same Node flags, the same environment.
  const measure = async (agent: (args: string[]) => CommandLine, bare: CommandLine, runs = RUNS, emulated = false) => {
    const bareNode = { startMs: timeRuns({ command: bare.command, args: [...bare.args, '-e', '0'] }, runs), ...(await idleRss({ command: bare.command, args: [...bare.args, ...IDLE_NODE] }, null, emulated)) };
    const a = { versionMs: timeRuns(agent(['--version']), runs), ...(await idleRss(agent(['run', '--config', config]), isReady, emulated, stateDir(config))) };
    const floor = await idleRss({ command: bare.command, args: [...bare.args, tlsFloor] }, (l) => l === 'floor ready', emulated);
    const ratio = (x: number, y: number) => Number((x / y).toFixed(2));
    return {
      ...(emulated ? { emulatorRssRatio: { idle: ratio(a.emulatorRssMB!.idle, bareNode.emulatorRssMB!.idle), settled: ratio(a.emulatorRssMB!.settled, bareNode.emulatorRssMB!.settled) } } : {}),
      started: { bareNode: shown({ command: bare.command, args: [...bare.args, ...IDLE_NODE] }), agent: shown(agent(['run', '--config', '<agent.json>'])) },
      bareNode,
      nodeTlsFloor: { idleRssMB: floor.idleRssMB, settledRssMB: floor.settledRssMB, rssRatio: ratio(floor.idleRssMB, bareNode.idleRssMB), settledRssRatio: ratio(floor.settledRssMB, bareNode.settledRssMB) },
      agent: { ...a, rssRatio: ratio(a.idleRssMB, bareNode.idleRssMB), settledRssRatio: ratio(a.settledRssMB, bareNode.settledRssMB), aboveFloorMB: MB((a.idleRssMB - floor.idleRssMB) * 1e6), idleFlashBytesPerHour: a.flash.blockBytesPerHour, idleStateFolderWritesPerHour: a.flash.stateFolder?.eventsPerHour ?? null },
    };
  };

  const x64 = {
    node: process.version,
    nodeFlags: flags,
    ...(await measure(x64Bundle, { command: process.execPath, args: flags })),
    withSqliteStore: { ...(await idleRss(x64Bundle(['run', '--config', sqliteConfig]), isReady, false, stateDir(sqliteConfig))), note: 'the same agent with its record in SQLite ("store": {"kind": "sqlite"}) instead of the HAL record store' },
    underHandshakes: {
      ...(await underHandshakes({ server: x64Bundle(['run', '--config', config]), client: x64Bundle(['run', '--config', clientConfig]), serverState: stateDir(config), clientState: stateDir(clientConfig), env: { ...process.env, ...AGENT_ENV, TRUSTROLL_LOG: 'warn' }, warmMs: IDLE_MS, windowMs: SETTLED_MS - IDLE_MS })),
      note: `the printer while a client-role agent handshakes with it every ${HANDSHAKE_INTERVAL_MS} ms (both measured)`,
    },
    tsxDevelopment: { versionMs: timeRuns(x64Tsx(['--version'])), ...(await idleRss(x64Tsx(['run', '--config', config]), isReady)) },
  };

  // The image's Node 24 without emulation: the x64 build of the same release (the Node 24 test step's runtime).
  const node24 = fetchRuntime(HOST_NODE24).node;
  const node24Flags = [...agentNodeFlags(HOST_NODE24.version), ...tried];
  const x64Node24 = { node: `v${HOST_NODE24.version}`, ...(await measure((args) => ({ command: node24, args: [...node24Flags, bundle.file, ...args] }), { command: node24, args: node24Flags })) };

  const emulated: Record<string, unknown> = {};
  for (const t of archs) {
    const why = emulationUnavailable(t);
    if (why) { emulated[t.arch] = { skipped: why }; continue; }
    const rootfs = join(images[t.arch]!.rootfs);
    const emulatedFlags = [...agentNodeFlags(t.runtime.version), ...tried];
    const bare = emulatedNode(t, rootfs, emulatedFlags);
    // As /usr/bin/trustroll-agent runs it; flags being tried go between the launcher's and the bundle.
    const agent = (args: string[]) => (tried.length ? emulatedNode(t, rootfs, [...emulatedFlags, join(rootfs, 'opt', 'trustroll', 'lib', BUNDLE_FILE), ...args]) : emulatedAgent(t, rootfs, args));
    emulated[t.arch] = { node: `v${t.runtime.version}`, ...(await measure(agent, bare, 3, true)) };
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
    x64Node24,
    emulated,
    targets: { bundleBytes: '< 1 MB', idleRss: '<= 1.3x bare node', idleFlashBytesPerHour: 0, underHandshakes: 'bounded and small (flash bytes per hour)' },
    method: `bare node and agent: same executable, Node flags and environment (the launcher's ${Object.entries(AGENT_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}, TRUSTROLL_LOG=warn); bare node idles in setInterval; the agent is a server-role device linked to a local Mosquitto over mTLS; RSS (VmRSS) ${IDLE_MS / 1000} s (idleRssMB) and ${SETTLED_MS / 1000} s (settledRssMB) after ready (bare node: after 0.5 s); under qemu the guest's mappings only (below 2^46, without qemu's own code cache, heap and arenas), the emulator's whole RSS in emulatorRssMB; flash: write_bytes of /proc/<pid>/io (bytes the process has written to block storage, page-granular; tmpfs and sockets not counted) and inotify events under the device's state folder, over the ${(SETTLED_MS - IDLE_MS) / 1000} s between the two RSS readings, scaled to an hour; the agent's runtimeDir (health file) on tmpfs as /run/trustroll on the device`,
    measuredAt: new Date().toISOString(),
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
} finally {
  await broker?.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(runtimeRoot, { recursive: true, force: true });
}
